//! Our CUDA kernels, compiled ahead of time by build.rs (machine code for
//! sm_80 and sm_90, PTX as the fallback) and loaded once per device, so the
//! first call pays no JIT compilation for them.

#[cfg(feature = "cuda")]
pub(crate) use imp::*;

#[cfg(feature = "cuda")]
mod imp {
    use candle_core::cuda_backend::cudarc::driver::sys::CUdevice_attribute;
    use candle_core::cuda_backend::cudarc::driver::{CudaFunction, CudaModule, CudaStream, LaunchArgs};
    use candle_core::cuda_backend::cudarc::nvrtc::Ptx;
    use candle_core::cuda_backend::WrapErr;
    use candle_core::{CudaDevice, Result};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};

    /// One compiled kernel file.
    pub struct Module {
        name: &'static str,
        image: &'static [u8],
    }

    pub const ATTENTION: Module =
        Module { name: "attention", image: include_bytes!(concat!(env!("OUT_DIR"), "/attention.fatbin")) };
    pub const ELEMENTWISE: Module =
        Module { name: "elementwise", image: include_bytes!(concat!(env!("OUT_DIR"), "/elementwise.fatbin")) };
    pub const SOFTMAX: Module =
        Module { name: "softmax", image: include_bytes!(concat!(env!("OUT_DIR"), "/softmax.fatbin")) };

    /// Loaded modules and the functions looked up in them, per device ordinal:
    /// a launch finds its function without a driver call.
    #[derive(Default)]
    struct Loaded {
        modules: HashMap<(usize, &'static str), Arc<CudaModule>>,
        functions: HashMap<(usize, &'static str, String), CudaFunction>,
        resident: HashMap<(usize, String, u32), usize>,
    }

    fn registry() -> std::sync::MutexGuard<'static, Loaded> {
        static LOADED: OnceLock<Mutex<Loaded>> = OnceLock::new();
        LOADED.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `name` from `module`, loading the module on this device the first time.
    pub fn function(dev: &CudaDevice, module: &Module, name: &str) -> Result<CudaFunction> {
        let ctx = dev.cuda_stream().context().clone();
        let ordinal = ctx.ordinal();
        let mut all = registry();
        if let Some(f) = all.functions.get(&(ordinal, module.name, name.to_string())) {
            return Ok(f.clone());
        }
        let loaded = match all.modules.get(&(ordinal, module.name)) {
            Some(m) => m.clone(),
            None => {
                let m = ctx.load_module(Ptx::from_binary(module.image.to_vec())).w()?;
                all.modules.insert((ordinal, module.name), m.clone());
                m
            }
        };
        let f = loaded.load_function(name).w()?;
        all.functions.insert((ordinal, module.name, name.to_string()), f.clone());
        Ok(f)
    }

    /// How many blocks of `threads` threads running `func` the whole device
    /// holds at once (SMs × blocks per SM at the kernel's register and
    /// shared-memory use), cached per device and kernel.
    pub fn resident_blocks(dev: &CudaDevice, func: &CudaFunction, name: &str, threads: u32) -> Result<usize> {
        let ctx = dev.cuda_stream().context().clone();
        let key = (ctx.ordinal(), name.to_string(), threads);
        let mut all = registry();
        if let Some(&n) = all.resident.get(&key) {
            return Ok(n);
        }
        let sms = ctx.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT).w()?;
        let per_sm = func.occupancy_max_active_blocks_per_multiprocessor(threads, 0, None).w()?;
        let n = (sms.max(1) as usize) * (per_sm.max(1) as usize);
        all.resident.insert(key, n);
        Ok(n)
    }

    /// The device's stream, on which every candle op runs too.
    pub fn stream(dev: &CudaDevice) -> Arc<CudaStream> {
        dev.cuda_stream()
    }

    /// A launch of `func` on `stream`.
    pub fn launch<'a>(stream: &'a CudaStream, func: &'a CudaFunction) -> LaunchArgs<'a> {
        stream.launch_builder(func)
    }
}
