//! Our own GPU kernels, where candle's general ones cost most of a step.
//!
//! Measured on an H200 with an 8B-shaped model (docs/performance.md): candle's
//! softmax gives each row to one warp, so a decode step's 32 rows of 32K
//! scores took 284 µs per layer; and the causal mask of a prefill chunk was a
//! broadcast add over the whole score matrix (12 ms per layer and chunk at
//! 32K). [`masked_softmax`] does both in one pass with a block per row.
//! [`add_rms_norm`] and [`act_mul`] take three launches out of every layer:
//! a decode step of candle ops waits on launches, not on the GPU.

use super::config::Activation;
use candle_core::{Result, Tensor, D};

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

/// Longest row the fused norm kernel takes (1024 threads × 8 values each).
const MAX_NORM_WIDTH: usize = 8192;

/// `(x + r, rms_norm(x + r) · w)`: the residual sum and the next norm in one
/// pass on the GPU (the sum rounded to the activation dtype first, as the
/// separate ops do); candle's two ops elsewhere.
pub fn add_rms_norm(x: &Tensor, r: &Tensor, w: &Tensor, eps: f32) -> Result<(Tensor, Tensor)> {
    let h = x.dim(D::Minus1)?;
    let fits = h <= MAX_NORM_WIDTH && x.dims() == r.dims() && w.dims() == [h];
    if x.device().is_cuda() && fits && x.is_contiguous() && r.is_contiguous() && w.is_contiguous() {
        let both = imp::add_rms_norm(x, r, w, eps)?;
        return Ok((both.get(0)?, both.get(1)?));
    }
    let sum = (x + r)?;
    let norm = candle_nn::ops::rms_norm(&sum, w, eps)?;
    Ok((sum, norm))
}

/// `act(gate) · up` from the stacked gate/up projection `[.., 2f]`.
pub fn act_mul(gu: &Tensor, act: Activation) -> Result<Tensor> {
    if gu.device().is_cuda() && gu.is_contiguous() {
        return imp::act_mul(gu, act);
    }
    let f = gu.dim(D::Minus1)? / 2;
    act_of(&gu.narrow(D::Minus1, 0, f)?, act)? * gu.narrow(D::Minus1, f, f)?
}

/// The activation on its own (separate gate and up projections, the CPU).
pub fn act_of(g: &Tensor, act: Activation) -> Result<Tensor> {
    match act {
        Activation::Silu => candle_nn::ops::silu(g),
        Activation::GeluTanh => g.gelu(),
        Activation::Gelu => g.gelu_erf(),
    }
}

#[cfg(feature = "cuda")]
mod imp {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg};
    use candle_core::cuda_backend::{CudaDType, CudaStorageSlice, WrapErr};
    use candle_core::{CudaDevice, CudaStorage, CustomOp1, Layout, Result, Shape, Tensor};

    use crate::engine::kernels::{self, Input, Launch3, Op3, ELEMENTWISE, SOFTMAX};
    /// Threads per row: enough to stream a 128K-slot row in a few loads per thread.
    const THREADS: u32 = 512;

    /// What differs between the one-input kernels: their launch and output
    /// shape. The dtype dispatch and candle's `CustomOp1` plumbing are shared.
    trait Launch1 {
        const NAME: &'static str;
        /// `suffix` names the dtype in the kernel's name (`f32`, `bf16`, `f16`).
        fn launch<T: DeviceRepr>(
            &self,
            dev: &CudaDevice,
            suffix: &str,
            src: &CudaSlice<T>,
            layout: &Layout,
        ) -> Result<CudaSlice<T>>;
        fn out_shape(&self, layout: &Layout) -> Shape;
    }

    /// A one-input kernel as a candle op.
    struct Op1<L>(L);

    impl<L: Launch1> CustomOp1 for Op1<L> {
        fn name(&self) -> &'static str {
            L::NAME
        }

        fn cpu_fwd(&self, _: &candle_core::CpuStorage, _: &Layout) -> Result<(candle_core::CpuStorage, Shape)> {
            candle_core::bail!("{} runs on CUDA only; the CPU uses candle's ops", L::NAME)
        }

        fn cuda_fwd(&self, storage: &CudaStorage, layout: &Layout) -> Result<(CudaStorage, Shape)> {
            let dev = storage.device();
            let slice = match &storage.slice {
                CudaStorageSlice::BF16(s) => CudaStorageSlice::BF16(self.0.launch(dev, "bf16", s, layout)?),
                CudaStorageSlice::F16(s) => CudaStorageSlice::F16(self.0.launch(dev, "f16", s, layout)?),
                CudaStorageSlice::F32(s) => CudaStorageSlice::F32(self.0.launch(dev, "f32", s, layout)?),
                _ => candle_core::bail!("{}: unsupported dtype {:?}", L::NAME, storage.dtype()),
            };
            Ok((CudaStorage { slice, device: dev.clone() }, self.0.out_shape(layout)))
        }
    }

    struct MaskedSoftmax {
        n_new: usize,
        causal: bool,
    }

    impl Launch1 for MaskedSoftmax {
        const NAME: &'static str = "masked softmax";

        fn launch<T: DeviceRepr>(
            &self,
            dev: &CudaDevice,
            suffix: &str,
            src: &CudaSlice<T>,
            layout: &Layout,
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
            let func = kernels::function(dev, &SOFTMAX, &format!("masked_softmax_{suffix}"))?;
            let cfg = LaunchConfig { grid_dim: (rows as u32, 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 };
            let (t, n, causal) = (t as i32, self.n_new as i32, i32::from(self.causal));
            let stream = kernels::stream(dev);
            let mut builder = kernels::launch(&stream, &func);
            builder.arg(&src);
            builder.arg(&out);
            builder.arg(&t);
            builder.arg(&n);
            builder.arg(&causal);
            // SAFETY: the kernel reads `count` elements of `src` and writes as many to `out`.
            unsafe { builder.launch(cfg) }.w()?;
            Ok(out)
        }

        fn out_shape(&self, layout: &Layout) -> Shape {
            layout.shape().clone()
        }
    }

    pub fn masked_softmax(att: &Tensor, n_new: usize, causal: bool) -> Result<Option<Tensor>> {
        Ok(Some(att.apply_op1_no_bwd(&Op1(MaskedSoftmax { n_new, causal }))?))
    }

    struct AddRmsNorm {
        eps: f32,
    }

    impl Launch3 for AddRmsNorm {
        const NAME: &'static str = "add_rms_norm";

        fn launch<T: DeviceRepr + CudaDType>(
            &self,
            dev: &CudaDevice,
            name: &str,
            [(x, lx), (r, lr), (w, lw)]: [Input<'_, T>; 3],
        ) -> Result<CudaSlice<T>> {
            let h = *lx.dims().last().unwrap_or(&1);
            let count = lx.shape().elem_count();
            let rows = count / h.max(1);
            if lw.shape().elem_count() != h || h > super::MAX_NORM_WIDTH || rows == 0 || rows > u32::MAX as usize {
                candle_core::bail!("add_rms_norm: {rows} rows of {h} with a weight of {}", lw.shape().elem_count());
            }
            // SAFETY: the kernel writes both halves of every row.
            let out = unsafe { dev.alloc::<T>(2 * count)? };
            let func = kernels::function(dev, &ELEMENTWISE, &format!("add_rms_norm_{name}"))?;
            let cfg = LaunchConfig { grid_dim: (rows as u32, 1, 1), block_dim: (1024, 1, 1), shared_mem_bytes: 0 };
            let (x, r, w) = (x.slice(lx.start_offset()..), r.slice(lr.start_offset()..), w.slice(lw.start_offset()..));
            let (rows_i, h_i) = (rows as i32, h as i32);
            let stream = kernels::stream(dev);
            let mut b = kernels::launch(&stream, &func);
            b.arg(&x).arg(&r).arg(&w).arg(&out).arg(&rows_i).arg(&h_i).arg(&self.eps);
            // SAFETY: x and r hold rows × h contiguous elements, w holds h.
            unsafe { b.launch(cfg) }.w()?;
            Ok(out)
        }

        fn out_shape(&self, [lx, _, _]: [&Layout; 3]) -> Shape {
            let mut dims = vec![2];
            dims.extend_from_slice(lx.dims());
            Shape::from(dims)
        }
    }

    pub fn add_rms_norm(x: &Tensor, r: &Tensor, w: &Tensor, eps: f32) -> Result<Tensor> {
        x.apply_op3_no_bwd(r, w, &Op3(AddRmsNorm { eps }))
    }

    struct ActMul {
        act: i32,
    }

    impl Launch1 for ActMul {
        const NAME: &'static str = "act_mul";

        fn launch<T: DeviceRepr>(
            &self,
            dev: &CudaDevice,
            name: &str,
            gu: &CudaSlice<T>,
            l: &Layout,
        ) -> Result<CudaSlice<T>> {
            let two_f = *l.dims().last().unwrap_or(&0);
            let count = l.shape().elem_count();
            if two_f == 0 || !two_f.is_multiple_of(2) || two_f / 2 > i32::MAX as usize {
                candle_core::bail!("act_mul: a last dimension of {two_f} is not a stacked gate/up pair");
            }
            let (f, rows) = (two_f / 2, count / two_f);
            // SAFETY: the kernel writes rows × f elements.
            let out = unsafe { dev.alloc::<T>(rows * f)? };
            let func = kernels::function(dev, &ELEMENTWISE, &format!("act_mul_{name}"))?;
            let blocks = (rows * f).div_ceil(256).clamp(1, 65_535) as u32;
            let cfg = LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
            let gu = gu.slice(l.start_offset()..);
            let (rows_u, f_i) = (rows as u64, f as i32);
            let stream = kernels::stream(dev);
            let mut b = kernels::launch(&stream, &func);
            b.arg(&gu).arg(&out).arg(&rows_u).arg(&f_i).arg(&self.act);
            // SAFETY: gu holds rows × 2f contiguous elements.
            unsafe { b.launch(cfg) }.w()?;
            Ok(out)
        }

        fn out_shape(&self, layout: &Layout) -> Shape {
            let mut dims = layout.dims().to_vec();
            if let Some(last) = dims.last_mut() {
                *last /= 2;
            }
            Shape::from(dims)
        }
    }

    pub fn act_mul(gu: &Tensor, act: super::Activation) -> Result<Tensor> {
        let act = match act {
            super::Activation::Silu => 0,
            super::Activation::GeluTanh => 1,
            super::Activation::Gelu => 2,
        };
        gu.apply_op1_no_bwd(&Op1(ActMul { act }))
    }
}

#[cfg(not(feature = "cuda"))]
mod imp {
    use candle_core::{Result, Tensor};

    pub fn masked_softmax(_: &Tensor, _: usize, _: bool) -> Result<Option<Tensor>> {
        Ok(None)
    }

    pub fn add_rms_norm(_: &Tensor, _: &Tensor, _: &Tensor, _: f32) -> Result<Tensor> {
        candle_core::bail!("add_rms_norm needs the `cuda` feature")
    }

    pub fn act_mul(_: &Tensor, _: super::Activation) -> Result<Tensor> {
        candle_core::bail!("act_mul needs the `cuda` feature")
    }
}
