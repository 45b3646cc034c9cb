//! Our own GPU kernels, where candle's general ones cost most of a step.
//!
//! Measured on an H200 with an 8B-shaped model (docs/performance.md): candle's
//! softmax gives each row to one warp, so a decode step's 32 rows of 32K
//! scores took 284 µs per layer; and the causal mask of a prefill chunk was a
//! broadcast add over the whole score matrix (12 ms per layer and chunk at
//! 32K). [`masked_softmax`] does both in one pass with a block per row.

use candle_core::{Result, Tensor};

/// Softmax over the last dimension of `att` (`[.., rows, t]`, rows laid out
/// `[kv_head][query_in_group][new_token]`), hiding from each of the `n_new`
/// new tokens the new tokens after it when `causal`. `None` off CUDA or for a
/// non-contiguous input: the caller then masks and normalizes with candle.
pub fn masked_softmax(att: &Tensor, n_new: usize, causal: bool) -> Result<Option<Tensor>> {
    if !att.device().is_cuda() || !att.is_contiguous() || n_new == 0 {
        return Ok(None);
    }
    imp::masked_softmax(att, n_new, causal)
}

#[cfg(feature = "cuda")]
mod imp {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg};
    use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
    use candle_core::{CudaDevice, CudaStorage, CustomOp1, Layout, Result, Shape, Tensor};

    const PTX: &str = include_str!("cuda/softmax.ptx");
    const MODULE: &str = "depthkv_softmax";
    /// Threads per row: enough to stream a 128K-slot row in a few loads per thread.
    const THREADS: u32 = 512;

    struct MaskedSoftmax {
        n_new: usize,
        causal: bool,
    }

    impl MaskedSoftmax {
        fn launch<T: DeviceRepr>(
            &self,
            kernel: &str,
            src: &CudaSlice<T>,
            layout: &Layout,
            dev: &CudaDevice,
        ) -> Result<CudaSlice<T>> {
            let dims = layout.shape().dims();
            let t = *dims.last().unwrap_or(&1);
            let count = layout.shape().elem_count();
            let rows = count / t.max(1);
            if rows == 0 || t > i32::MAX as usize || rows > u32::MAX as usize {
                candle_core::bail!("masked softmax: {rows} rows of {t} scores are out of the kernel's range");
            }
            let src = src.slice(layout.start_offset()..layout.start_offset() + count);
            // SAFETY: every element is written by the kernel.
            let out = unsafe { dev.alloc::<T>(count)? };
            let func = dev.get_or_load_custom_func(kernel, MODULE, PTX)?;
            let cfg = LaunchConfig { grid_dim: (rows as u32, 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 };
            let (t, n, causal) = (t as i32, self.n_new as i32, i32::from(self.causal));
            let mut builder = func.builder();
            builder.arg(&src);
            builder.arg(&out);
            builder.arg(&t);
            builder.arg(&n);
            builder.arg(&causal);
            // SAFETY: the kernel reads `count` elements of `src` and writes as many to `out`.
            unsafe { builder.launch(cfg) }.w()?;
            Ok(out)
        }
    }

    impl CustomOp1 for MaskedSoftmax {
        fn name(&self) -> &'static str {
            "masked-softmax"
        }

        fn cpu_fwd(&self, _: &candle_core::CpuStorage, _: &Layout) -> Result<(candle_core::CpuStorage, Shape)> {
            candle_core::bail!("masked softmax runs on CUDA only; the CPU uses candle's ops")
        }

        fn cuda_fwd(&self, storage: &CudaStorage, layout: &Layout) -> Result<(CudaStorage, Shape)> {
            let dev = storage.device();
            let slice = match &storage.slice {
                CudaStorageSlice::BF16(s) => {
                    CudaStorageSlice::BF16(self.launch("masked_softmax_bf16", s, layout, dev)?)
                }
                CudaStorageSlice::F16(s) => CudaStorageSlice::F16(self.launch("masked_softmax_f16", s, layout, dev)?),
                CudaStorageSlice::F32(s) => CudaStorageSlice::F32(self.launch("masked_softmax_f32", s, layout, dev)?),
                _ => candle_core::bail!("masked softmax: unsupported dtype {:?}", storage.dtype()),
            };
            Ok((CudaStorage { slice, device: dev.clone() }, layout.shape().clone()))
        }
    }

    pub fn masked_softmax(att: &Tensor, n_new: usize, causal: bool) -> Result<Option<Tensor>> {
        Ok(Some(att.apply_op1_no_bwd(&MaskedSoftmax { n_new, causal })?))
    }
}

#[cfg(not(feature = "cuda"))]
mod imp {
    use candle_core::{Result, Tensor};

    pub fn masked_softmax(_: &Tensor, _: usize, _: bool) -> Result<Option<Tensor>> {
        Ok(None)
    }
}
