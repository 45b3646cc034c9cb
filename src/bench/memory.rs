//! Device memory as CUDA's default memory pool counts it. candle allocates
//! every tensor from that pool (stream-ordered allocation), so its "used"
//! figures are exact for our process, while `cuMemGetInfo` also counts
//! memory the pool keeps reserved after tensors are dropped (which is why a
//! process-wide figure never falls when a pruned cache replaces a full one).

use candle_core::Device;

/// Bytes in use now and the most in use since the last [`reset_peak`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PoolUsage {
    pub used_bytes: usize,
    pub peak_bytes: usize,
}

/// Current and peak use; `None` off CUDA or when the pool cannot be read.
pub fn usage(device: &Device) -> Option<PoolUsage> {
    imp::usage(device)
}

/// Starts a new peak: the high-water mark becomes the current use.
pub fn reset_peak(device: &Device) {
    imp::reset_peak(device)
}

/// Returns memory the pool holds but no tensor uses to the driver, so that
/// `cuMemGetInfo` and `nvidia-smi` agree with [`usage`].
pub fn trim(device: &Device) {
    imp::trim(device)
}

#[cfg(feature = "cuda")]
mod imp {
    use super::PoolUsage;
    use candle_core::cuda_backend::cudarc::driver::{result, sys};
    use candle_core::Device;

    fn pool(device: &Device) -> Option<sys::CUmemoryPool> {
        let Device::Cuda(_) = device else { return None };
        device.synchronize().ok()?;
        // SAFETY: device 0 is the one `engine::device::open` uses.
        unsafe { result::device::get_default_mem_pool(result::device::get(0).ok()?).ok() }
    }

    fn read(pool: sys::CUmemoryPool, attr: sys::CUmemPool_attribute) -> Option<usize> {
        let mut v: u64 = 0;
        // SAFETY: both attributes read here are 64-bit counters.
        unsafe { result::mem_pool::get_attribute(pool, attr, (&mut v as *mut u64).cast()).ok()? };
        usize::try_from(v).ok()
    }

    pub fn usage(device: &Device) -> Option<PoolUsage> {
        let p = pool(device)?;
        Some(PoolUsage {
            used_bytes: read(p, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_CURRENT)?,
            peak_bytes: read(p, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH)?,
        })
    }

    pub fn reset_peak(device: &Device) {
        if let Some(p) = pool(device) {
            let mut zero: u64 = 0;
            // SAFETY: the high-water mark may only be reset to zero, which restarts it at the current use.
            let _ = unsafe {
                result::mem_pool::set_attribute(
                    p,
                    sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
                    (&mut zero as *mut u64).cast(),
                )
            };
        }
    }

    pub fn trim(device: &Device) {
        if let Some(p) = pool(device) {
            // SAFETY: trimming only releases memory no allocation uses.
            let _ = unsafe { result::mem_pool::trim_to(p, 0) };
        }
    }
}

#[cfg(not(feature = "cuda"))]
mod imp {
    use super::PoolUsage;
    use candle_core::Device;

    pub fn usage(_: &Device) -> Option<PoolUsage> {
        None
    }

    pub fn reset_peak(_: &Device) {}

    pub fn trim(_: &Device) {}
}
