//! Attention that never materializes its scores (CUDA, bf16/f16).
//!
//! The materialized path writes a `[heads, new tokens, slots]` score matrix,
//! masks it, normalizes it and multiplies it by V: at 32K slots that matrix,
//! not the arithmetic, is what a prefill chunk costs (docs/performance.md).
//! [`prefill`] computes Q·Kᵀ, the online softmax and P·V tile by tile in
//! shared memory with tensor-core products; [`decode`] splits one step's
//! few query rows over slot ranges and merges the partial softmaxes. Both
//! read the layer's cache in place (grouped-query layout, no K/V repeat).
//! Kernels: `src/engine/cuda/attention.cu`.

use candle_core::{DType, Device, Result, Tensor};

/// Which attention kernels the engine uses where both apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionKernel {
    /// Our flash kernels on CUDA with bf16/f16 activations where the layer
    /// allows it (no sliding window, soft-cap, padded heads or hidden slots),
    /// the materialized path elsewhere.
    #[default]
    Auto,
    /// candle's ops throughout: RoPE and the cache append separately, the
    /// scores always materialized (the reference path; also the CPU's).
    Materialized,
}

/// Head sizes the prefill kernel is instantiated for.
const PREFILL_HEAD_DIMS: [usize; 2] = [64, 128];
/// Head sizes the decode kernel is instantiated for.
const DECODE_HEAD_DIMS: [usize; 3] = [64, 128, 256];
/// Query rows per KV head the decode kernel handles in one block.
const DECODE_MAX_GROUP: usize = 8;

/// What the flash kernels can serve for a model, decided once at load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlashSupport {
    pub prefill: bool,
    pub decode: bool,
}

impl FlashSupport {
    pub fn new(kind: AttentionKernel, device: &Device, dtype: DType, head_dim: usize, group: usize) -> Self {
        let usable = kind == AttentionKernel::Auto
            && cfg!(feature = "cuda")
            && device.is_cuda()
            && matches!(dtype, DType::BF16 | DType::F16);
        Self {
            prefill: usable && PREFILL_HEAD_DIMS.contains(&head_dim),
            decode: usable && DECODE_HEAD_DIMS.contains(&head_dim) && (1..=DECODE_MAX_GROUP).contains(&group),
        }
    }
}

/// Whether a cache tensor (`[1, heads, slots, d]`) is laid out as the
/// kernels read it: slots contiguous, heads at a fixed stride, 16-byte aligned.
pub fn readable(kv: &Tensor) -> bool {
    let l = kv.layout();
    let (stride, dims) = (l.stride(), l.dims());
    dims.len() == 4
        && dims[0] == 1
        && stride[3] == 1
        && stride[2] == dims[3]
        && l.start_offset().is_multiple_of(8)
        && stride[1].is_multiple_of(8)
}

/// Attention of `q` (`[1, kv_heads, rows, d]`, rows `[query_in_group][new
/// token]`, contiguous) over `k`, `v` (`[1, kv_heads, t, d]`, [`readable`]);
/// with `causal` new token `j` of `n_new` sees slots `..= t - n_new + j`.
/// Returns `[1, kv_heads, rows, d]` like the materialized `softmax(q·kᵀ)·v`.
pub fn prefill(q: &Tensor, k: &Tensor, v: &Tensor, n_new: usize, causal: bool, scale: f32) -> Result<Tensor> {
    imp::prefill(q, k, v, n_new, causal, scale)
}

/// One decode step: every new row sees every slot (`q` as for [`prefill`]
/// with one new token per query head).
pub fn decode(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> Result<Tensor> {
    imp::decode(q, k, v, scale)
}

#[cfg(feature = "cuda")]
mod imp {
    use candle_core::cuda_backend::cudarc::driver::sys::CUfunction_attribute_enum;
    use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg};
    use candle_core::cuda_backend::{CudaDType, WrapErr};
    use candle_core::{CudaDevice, Layout, Result, Shape, Tensor};

    use crate::engine::kernels::{self, Input, Launch3, Op3, ATTENTION};
    const THREADS: u32 = 128;
    /// Query rows and slots per prefill tile (BM, BN in the kernel).
    const ROWS_PER_BLOCK: usize = 64;
    const SLOTS_PER_TILE: usize = 64;
    /// Decode: fewest slots worth a block; splits are whole 32-slot warp chunks.
    const MIN_SLOTS_PER_SPLIT: usize = 128;
    const WARP_SLOTS: usize = 32;
    /// Threads of the merge kernel and most splits it merges (its shared memory).
    const COMBINE_THREADS: u32 = 256;
    const MAX_SPLITS: usize = 1024;

    /// The shapes every launch needs, checked once.
    struct Dims {
        heads: usize,
        rows: usize,
        d: usize,
        t: usize,
        kv_stride: usize,
    }

    fn dims(lq: &Layout, lk: &Layout, lv: &Layout) -> Result<Dims> {
        let (q, k) = (lq.dims(), lk.dims());
        if q.len() != 4 || k.len() != 4 || q[0] != 1 || k[0] != 1 || q[1] != k[1] || q[3] != k[3] {
            candle_core::bail!("flash attention: q {q:?} and k {k:?} do not match");
        }
        if lk.dims() != lv.dims() || lk.stride() != lv.stride() || !lq.is_contiguous() {
            candle_core::bail!("flash attention: k/v layouts differ or q is not contiguous");
        }
        let kv_stride = lk.stride()[1];
        if lk.stride()[3] != 1
            || lk.stride()[2] != k[3]
            || !kv_stride.is_multiple_of(8)
            || !lq.start_offset().is_multiple_of(8)
        {
            candle_core::bail!("flash attention: the cache is not laid out slot-contiguous");
        }
        if k[2] == 0 || k[2] > i32::MAX as usize || q[2] > i32::MAX as usize {
            candle_core::bail!("flash attention: {} slots or {} rows out of range", k[2], q[2]);
        }
        Ok(Dims { heads: q[1], rows: q[2], d: q[3], t: k[2], kv_stride })
    }

    /// What differs between the two kernels: their checks and launches, on
    /// the shapes [`dims`] checked once and views of q, k and v. [`Flash`]
    /// makes either a [`Launch3`] op.
    trait Launch {
        const NAME: &'static str;
        fn check(&self, x: &Dims) -> Result<()>;
        fn launch<T: DeviceRepr>(
            &self,
            dev: &CudaDevice,
            name: &str,
            q: CudaView<T>,
            k: CudaView<T>,
            v: CudaView<T>,
            x: &Dims,
        ) -> Result<CudaSlice<T>>;
    }

    /// A flash kernel as a [`Launch3`] op on q, k and v (bf16 or f16).
    struct Flash<L>(L);

    impl<L: Launch> Launch3 for Flash<L> {
        const NAME: &'static str = L::NAME;

        fn launch<T: DeviceRepr + CudaDType>(
            &self,
            dev: &CudaDevice,
            suffix: &str,
            [(q, lq), (k, lk), (v, lv)]: [Input<'_, T>; 3],
        ) -> Result<CudaSlice<T>> {
            if !matches!(suffix, "bf16" | "f16") {
                candle_core::bail!("flash attention runs on bf16 or f16 only");
            }
            let x = dims(lq, lk, lv)?;
            self.0.check(&x)?;
            let (q, k, v) = (q.slice(lq.start_offset()..), k.slice(lk.start_offset()..), v.slice(lv.start_offset()..));
            self.0.launch(dev, suffix, q, k, v, &x)
        }

        fn out_shape(&self, [lq, _, _]: [&Layout; 3]) -> Shape {
            lq.shape().clone()
        }
    }

    struct Prefill {
        n_new: usize,
        causal: bool,
        scale: f32,
    }

    impl Launch for Prefill {
        const NAME: &'static str = "flash prefill";

        fn check(&self, x: &Dims) -> Result<()> {
            if self.n_new == 0 || !x.rows.is_multiple_of(self.n_new) {
                candle_core::bail!("flash prefill: {} rows for {} new tokens", x.rows, self.n_new);
            }
            Ok(())
        }

        fn launch<T: DeviceRepr>(
            &self,
            dev: &CudaDevice,
            name: &str,
            q: CudaView<T>,
            k: CudaView<T>,
            v: CudaView<T>,
            x: &Dims,
        ) -> Result<CudaSlice<T>> {
            let count = x.heads * x.rows * x.d;
            // SAFETY: the kernel writes every row of every head.
            let out = unsafe { dev.alloc::<T>(count)? };
            let func = kernels::function(dev, &ATTENTION, &format!("flash_prefill_{name}_d{}", x.d))?;
            let smem = 4 * SLOTS_PER_TILE * (x.d + 8) * std::mem::size_of::<T>();
            func.set_attribute(CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem as i32)
                .w()?;
            let blocks = x.rows.div_ceil(ROWS_PER_BLOCK);
            let cfg = LaunchConfig {
                grid_dim: (blocks as u32, x.heads as u32, 1),
                block_dim: (THREADS, 1, 1),
                shared_mem_bytes: smem as u32,
            };
            let (rows, n_new, t) = (x.rows as i32, self.n_new as i32, x.t as i32);
            let (stride, causal) = (x.kv_stride as i64, i32::from(self.causal));
            let stream = kernels::stream(dev);
            let mut b = kernels::launch(&stream, &func);
            b.arg(&q).arg(&k).arg(&v).arg(&out).arg(&rows).arg(&n_new).arg(&t).arg(&stride).arg(&self.scale);
            b.arg(&causal);
            // SAFETY: shapes and strides were checked by `dims`; the kernel reads
            // rows × d of q, t slots per head of k and v, and writes `count`.
            unsafe { b.launch(cfg) }.w()?;
            Ok(out)
        }
    }

    struct Decode {
        scale: f32,
    }

    impl Launch for Decode {
        const NAME: &'static str = "flash decode";

        fn check(&self, x: &Dims) -> Result<()> {
            if x.rows == 0 || x.rows > super::DECODE_MAX_GROUP {
                candle_core::bail!(
                    "flash decode: {} query rows per KV head (at most {})",
                    x.rows,
                    super::DECODE_MAX_GROUP
                );
            }
            Ok(())
        }

        fn launch<T: DeviceRepr>(
            &self,
            dev: &CudaDevice,
            name: &str,
            q: CudaView<T>,
            k: CudaView<T>,
            v: CudaView<T>,
            x: &Dims,
        ) -> Result<CudaSlice<T>> {
            let group = x.rows;
            // Kernels exist for 1, 2, 4 and 8 rows; the padding rows are zero.
            let rows_compiled = group.next_power_of_two();
            let fname = format!("flash_decode_{name}_d{}_g{rows_compiled}", x.d);
            let func = kernels::function(dev, &ATTENTION, &fname)?;
            // One wave: as many splits as the GPU holds blocks at once (at the
            // kernel's register use). More leave a partial second wave; fewer
            // leave bandwidth unused.
            let resident = kernels::resident_blocks(dev, &func, &fname, THREADS)?;
            let max_splits = (resident / x.heads).clamp(1, MAX_SPLITS);
            let per_split = x.t.div_ceil(max_splits).max(MIN_SLOTS_PER_SPLIT).next_multiple_of(WARP_SLOTS);
            let splits = x.t.div_ceil(per_split);
            let rows = x.heads * group;
            // SAFETY: every split writes its partial rows; the combine writes every output row.
            let part_o = unsafe { dev.alloc::<f32>(splits * rows * x.d)? };
            let part_ml = unsafe { dev.alloc::<f32>(splits * rows * 2)? };
            let out = unsafe { dev.alloc::<T>(rows * x.d)? };
            let cfg = LaunchConfig {
                grid_dim: (splits as u32, x.heads as u32, 1),
                block_dim: (THREADS, 1, 1),
                shared_mem_bytes: 0,
            };
            let (g, t, stride, per) = (group as i32, x.t as i32, x.kv_stride as i64, per_split as i32);
            let stream = kernels::stream(dev);
            let mut b = kernels::launch(&stream, &func);
            b.arg(&q).arg(&k).arg(&v).arg(&part_o).arg(&part_ml).arg(&g).arg(&t).arg(&stride).arg(&per);
            b.arg(&self.scale);
            // SAFETY: checked shapes; partials hold splits × rows rows.
            unsafe { b.launch(cfg) }.w()?;
            let combine = kernels::function(dev, &ATTENTION, &format!("decode_combine_{name}_d{}", x.d))?;
            let cfg =
                LaunchConfig { grid_dim: (rows as u32, 1, 1), block_dim: (COMBINE_THREADS, 1, 1), shared_mem_bytes: 0 };
            let (s, r) = (splits as i32, rows as i32);
            let mut b = kernels::launch(&stream, &combine);
            b.arg(&part_o).arg(&part_ml).arg(&out).arg(&s).arg(&r);
            // SAFETY: reads the partials written above, writes rows × d.
            unsafe { b.launch(cfg) }.w()?;
            Ok(out)
        }
    }

    pub fn prefill(q: &Tensor, k: &Tensor, v: &Tensor, n_new: usize, causal: bool, scale: f32) -> Result<Tensor> {
        q.apply_op3_no_bwd(k, v, &Op3(Flash(Prefill { n_new, causal, scale })))
    }

    pub fn decode(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> Result<Tensor> {
        q.apply_op3_no_bwd(k, v, &Op3(Flash(Decode { scale })))
    }
}

#[cfg(not(feature = "cuda"))]
mod imp {
    use candle_core::{Result, Tensor};

    pub fn prefill(_: &Tensor, _: &Tensor, _: &Tensor, _: usize, _: bool, _: f32) -> Result<Tensor> {
        candle_core::bail!("flash attention needs the `cuda` feature")
    }

    pub fn decode(_: &Tensor, _: &Tensor, _: &Tensor, _: f32) -> Result<Tensor> {
        candle_core::bail!("flash attention needs the `cuda` feature")
    }
}
