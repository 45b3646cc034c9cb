//! The stacked q/k/v projection split by head, RoPE on q and k, and k and v
//! appended to the layer's cache, in one CUDA launch.
//!
//! Done with candle's ops this is seven launches per layer and token (three
//! copies out of the stacked projection, two RoPEs, two appends), and a decode
//! step waits on launches rather than on the GPU (docs/performance.md). The
//! kernel (`rope_append_*` in `src/engine/cuda/elementwise.cu`) rounds as
//! candle's RoPE does, so the fused path matches the separate ops.

use candle_core::{Result, Tensor};

/// The head layout of a stacked projection `[q | k | v]`.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub query: usize,
    pub kv: usize,
    pub dim: usize,
}

/// Splits `qkv` (`[1, n, (query + 2 kv) · dim]`, contiguous), rotates q and
/// k by `cos`/`sin` (`[n, dim / 2]`; `interleaved` pairs or halves) and
/// writes k and v into `k_buf`/`v_buf` (`[1, kv, capacity, dim]`,
/// contiguous) at slots `slot..slot + n`. Returns q as `[1, query, n, dim]`.
/// The caller owns the slots written: nothing else may read them yet.
#[allow(clippy::too_many_arguments)]
pub fn rope_append(
    qkv: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    heads: Heads,
    interleaved: bool,
    k_buf: &Tensor,
    v_buf: &Tensor,
    slot: usize,
) -> Result<Tensor> {
    imp::rope_append(qkv, cos, sin, heads, interleaved, k_buf, v_buf, slot)
}

/// Whether the fused kernel exists for this build and device.
pub fn available(device: &candle_core::Device) -> bool {
    cfg!(feature = "cuda") && device.is_cuda()
}

#[cfg(feature = "cuda")]
mod imp {
    use super::Heads;
    use candle_core::cuda_backend::cudarc::driver::{CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg};
    use candle_core::cuda_backend::{CudaDType, WrapErr};
    use candle_core::{CudaDevice, Layout, Result, Shape, Storage, Tensor};

    use crate::engine::kernels::{self, Input, Launch3, Op3, ELEMENTWISE};

    struct RopeAppend {
        heads: Heads,
        interleaved: bool,
        k_buf: Tensor,
        v_buf: Tensor,
        slot: usize,
    }

    /// The cache buffers' slices, of the op's dtype.
    fn buffer<T: CudaDType>(s: &Storage) -> Result<&CudaSlice<T>> {
        match s {
            Storage::Cuda(c) => c.as_cuda_slice::<T>(),
            _ => candle_core::bail!("rope_append: the cache is not on CUDA"),
        }
    }

    impl RopeAppend {
        /// Checks every shape against the kernel's indexing; returns n.
        fn check(&self, lqkv: &Layout, lcos: &Layout, lsin: &Layout) -> Result<usize> {
            let Heads { query, kv, dim } = self.heads;
            let q = lqkv.dims();
            let n = if q.len() == 3 && q[0] == 1 { q[1] } else { 0 };
            let width = (query + 2 * kv) * dim;
            let (lk, lv) = (self.k_buf.layout(), self.v_buf.layout());
            let cap = lk.dims().get(2).copied().unwrap_or(0);
            let fits = n > 0
                && dim % 2 == 0
                && q[2] == width
                && lqkv.is_contiguous()
                && lcos.dims() == [n, dim / 2]
                && lsin.dims() == [n, dim / 2]
                && lcos.is_contiguous()
                && lsin.is_contiguous()
                && lk.dims() == [1, kv, cap, dim]
                && lv.dims() == lk.dims()
                && lk.is_contiguous()
                && lv.is_contiguous()
                && self.slot + n <= cap
                && n <= i32::MAX as usize
                && query + kv <= u16::MAX as usize;
            if !fits {
                candle_core::bail!(
                    "rope_append: qkv {q:?}, cos {:?}, cache {:?} at slot {} do not fit {:?}",
                    lcos.dims(),
                    lk.dims(),
                    self.slot,
                    self.heads
                );
            }
            Ok(n)
        }
    }

    impl Launch3 for RopeAppend {
        const NAME: &'static str = "rope_append";

        fn launch<T: DeviceRepr + CudaDType>(
            &self,
            dev: &CudaDevice,
            name: &str,
            [(qkv, lqkv), (cos, lcos), (sin, lsin)]: [Input<'_, T>; 3],
        ) -> Result<CudaSlice<T>> {
            let n = self.check(lqkv, lcos, lsin)?;
            let Heads { query, kv, dim } = self.heads;
            let (k_store, lk) = self.k_buf.storage_and_layout();
            let (v_store, lv) = self.v_buf.storage_and_layout();
            let k = buffer::<T>(&k_store)?.slice(lk.start_offset()..);
            let v = buffer::<T>(&v_store)?.slice(lv.start_offset()..);
            // SAFETY: the kernel writes every query head's n rows.
            let q = unsafe { dev.alloc::<T>(query * n * dim)? };
            let func = kernels::function(dev, &ELEMENTWISE, &format!("rope_append_{name}"))?;
            let threads = (dim / 2).next_multiple_of(32).min(256) as u32;
            let cfg = LaunchConfig {
                grid_dim: (n as u32, (query + kv) as u32, 1),
                block_dim: (threads, 1, 1),
                shared_mem_bytes: 0,
            };
            let (qkv, cos, sin) =
                (qkv.slice(lqkv.start_offset()..), cos.slice(lcos.start_offset()..), sin.slice(lsin.start_offset()..));
            let (n_i, hq, hkv, d) = (n as i32, query as i32, kv as i32, dim as i32);
            let (head_stride, slot) = (lk.stride()[1] as i64, self.slot as i64);
            let interleaved = i32::from(self.interleaved);
            let stream = kernels::stream(dev);
            let mut b = kernels::launch(&stream, &func);
            b.arg(&qkv).arg(&cos).arg(&sin).arg(&q).arg(&k).arg(&v);
            b.arg(&n_i).arg(&hq).arg(&hkv).arg(&d).arg(&head_stride).arg(&slot).arg(&interleaved);
            // SAFETY: `check` verified every extent the kernel indexes; the cache
            // slots written are past every reader's live length.
            unsafe { b.launch(cfg) }.w()?;
            Ok(q)
        }

        fn out_shape(&self, [lqkv, _, _]: [&Layout; 3]) -> Shape {
            Shape::from((1, self.heads.query, lqkv.dims()[1], self.heads.dim))
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn rope_append(
        qkv: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        heads: Heads,
        interleaved: bool,
        k_buf: &Tensor,
        v_buf: &Tensor,
        slot: usize,
    ) -> Result<Tensor> {
        if k_buf.dtype() != qkv.dtype() || v_buf.dtype() != qkv.dtype() {
            candle_core::bail!("rope_append: the cache holds {:?}, the projection {:?}", k_buf.dtype(), qkv.dtype());
        }
        let op = RopeAppend { heads, interleaved, k_buf: k_buf.clone(), v_buf: v_buf.clone(), slot };
        qkv.apply_op3_no_bwd(cos, sin, &Op3(op))
    }
}

#[cfg(not(feature = "cuda"))]
mod imp {
    use super::Heads;
    use candle_core::{Result, Tensor};

    #[allow(clippy::too_many_arguments)]
    pub fn rope_append(
        _: &Tensor,
        _: &Tensor,
        _: &Tensor,
        _: Heads,
        _: bool,
        _: &Tensor,
        _: &Tensor,
        _: usize,
    ) -> Result<Tensor> {
        candle_core::bail!("rope_append needs the `cuda` feature")
    }
}
