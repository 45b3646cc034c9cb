//! Our CUDA kernels, compiled ahead of time by build.rs (machine code for
//! sm_80 and sm_90, PTX as the fallback) and loaded once per device, so the
//! first call pays no JIT compilation for them.

#[cfg(feature = "cuda")]
pub(crate) use imp::*;

#[cfg(feature = "cuda")]
mod imp {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::sys::CUdevice_attribute;
    use candle_core::cuda_backend::cudarc::driver::{
        CudaFunction, CudaModule, CudaSlice, CudaStream, DeviceRepr, LaunchArgs,
    };
    use candle_core::cuda_backend::cudarc::nvrtc::Ptx;
    use candle_core::cuda_backend::{CudaDType, CudaStorageSlice, WrapErr};
    use candle_core::{CpuStorage, CudaDevice, CudaStorage, CustomOp3, Layout, Result, Shape};
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
        /// Per (device, module), by kernel name: looked up by `&str`, no
        /// allocation per launch.
        functions: HashMap<(usize, &'static str), HashMap<String, CudaFunction>>,
        /// Per (device, block size), by kernel name.
        resident: HashMap<(usize, u32), HashMap<String, usize>>,
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
        if let Some(f) = all.functions.get(&(ordinal, module.name)).and_then(|by_name| by_name.get(name)) {
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
        all.functions.entry((ordinal, module.name)).or_default().insert(name.to_string(), f.clone());
        Ok(f)
    }

    /// How many blocks of `threads` threads running `func` the whole device
    /// holds at once (SMs × blocks per SM at the kernel's register and
    /// shared-memory use), cached per device and kernel.
    pub fn resident_blocks(dev: &CudaDevice, func: &CudaFunction, name: &str, threads: u32) -> Result<usize> {
        let ctx = dev.cuda_stream().context().clone();
        let key = (ctx.ordinal(), threads);
        let mut all = registry();
        if let Some(&n) = all.resident.get(&key).and_then(|by_name| by_name.get(name)) {
            return Ok(n);
        }
        let sms = ctx.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT).w()?;
        let per_sm = func.occupancy_max_active_blocks_per_multiprocessor(threads, 0, None).w()?;
        let n = (sms.max(1) as usize) * (per_sm.max(1) as usize);
        all.resident.entry(key).or_default().insert(name.to_string(), n);
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

    /// One input of a [`Launch3`] kernel: its slice and layout.
    pub type Input<'a, T> = (&'a CudaSlice<T>, &'a Layout);

    /// What differs between kernels on three inputs of one dtype (f32, bf16
    /// or f16): their checks, launch and output shape. The dtype dispatch and
    /// candle's `CustomOp3` plumbing are [`Op3`]'s.
    pub trait Launch3 {
        const NAME: &'static str;
        /// `suffix` names the dtype in the kernel's name (`f32`, `bf16`, `f16`).
        fn launch<T: DeviceRepr + CudaDType>(
            &self,
            dev: &CudaDevice,
            suffix: &str,
            inputs: [Input<'_, T>; 3],
        ) -> Result<CudaSlice<T>>;
        /// Called after a successful launch, whose checks it may rely on.
        fn out_shape(&self, layouts: [&Layout; 3]) -> Shape;
    }

    /// A [`Launch3`] kernel as a candle op (CUDA only: the CPU uses candle's ops).
    pub struct Op3<L>(pub L);

    impl<L: Launch3> CustomOp3 for Op3<L> {
        fn name(&self) -> &'static str {
            L::NAME
        }

        fn cpu_fwd(
            &self,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            candle_core::bail!("{} runs on CUDA only; the CPU uses candle's ops", L::NAME)
        }

        fn cuda_fwd(
            &self,
            s1: &CudaStorage,
            l1: &Layout,
            s2: &CudaStorage,
            l2: &Layout,
            s3: &CudaStorage,
            l3: &Layout,
        ) -> Result<(CudaStorage, Shape)> {
            use CudaStorageSlice::{BF16, F16, F32};
            let dev = s1.device();
            let slice = match (&s1.slice, &s2.slice, &s3.slice) {
                (BF16(a), BF16(b), BF16(c)) => BF16(self.0.launch(dev, "bf16", [(a, l1), (b, l2), (c, l3)])?),
                (F16(a), F16(b), F16(c)) => F16(self.0.launch(dev, "f16", [(a, l1), (b, l2), (c, l3)])?),
                (F32(a), F32(b), F32(c)) => F32(self.0.launch(dev, "f32", [(a, l1), (b, l2), (c, l3)])?),
                _ => candle_core::bail!("{}: the three inputs must share an f32, bf16 or f16 dtype", L::NAME),
            };
            Ok((CudaStorage { slice, device: dev.clone() }, self.0.out_shape([l1, l2, l3])))
        }
    }
}
