//! Our CUDA kernels, compiled ahead of time by build.rs (machine code for
//! sm_80 and sm_90, PTX as the fallback) and loaded once per device, so the
//! first call pays no JIT compilation for them.

#[cfg(feature = "cuda")]
pub(crate) use imp::*;

#[cfg(feature = "cuda")]
mod imp {
    use candle_core::cuda_backend::cudarc::driver::{CudaFunction, CudaModule, CudaStream, LaunchArgs};
    use candle_core::cuda_backend::cudarc::nvrtc::Ptx;
    use candle_core::cuda_backend::WrapErr;
    use candle_core::{CudaDevice, Result};
    use std::sync::{Arc, Mutex};

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

    type Loaded = Vec<((usize, &'static str), Arc<CudaModule>)>;

    /// `name` from `module`, loading the module on this device the first time.
    pub fn function(dev: &CudaDevice, module: &Module, name: &str) -> Result<CudaFunction> {
        static LOADED: Mutex<Loaded> = Mutex::new(Vec::new());
        let ctx = dev.cuda_stream().context().clone();
        let key = (ctx.ordinal(), module.name);
        let loaded = {
            let mut all = LOADED.lock().unwrap_or_else(|p| p.into_inner());
            match all.iter().find(|(k, _)| *k == key) {
                Some((_, m)) => m.clone(),
                None => {
                    let m = ctx.load_module(Ptx::from_binary(module.image.to_vec())).w()?;
                    all.push((key, m.clone()));
                    m
                }
            }
        };
        loaded.load_function(name).w()
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
