//! Choosing where the model runs.

use super::error::{EngineError, Result};
use candle_core::{DType, Device};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl std::str::FromStr for DeviceChoice {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda),
            _ => Err(EngineError::UnknownDevice(s.to_string())),
        }
    }
}

/// Opens the device. `Auto` takes CUDA when this build has it and a GPU answers.
pub fn open(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda => open_cuda(),
        DeviceChoice::Auto => Ok(open_cuda().unwrap_or(Device::Cpu)),
    }
}

#[cfg(feature = "cuda")]
fn open_cuda() -> Result<Device> {
    let device = Device::new_cuda(0).map_err(|e| EngineError::CudaUnavailable(e.to_string()))?;
    if let Device::Cuda(cuda) = &device {
        // All our work runs on candle's one stream, so cudarc's event tracking
        // (its guard for buffers shared between streams) only costs two event
        // creations and destructions per tensor: thousands per decoded token.
        // SAFETY: nothing here launches work on a second stream.
        unsafe { cuda.disable_event_tracking() };
        warm_jit_cache(cuda);
    }
    Ok(device)
}

/// Set by a binary whose `main` runs [`jit_child`] first: only such a
/// binary can be started again as a compile worker.
static WARMUP_ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The environment variable naming the modules a compile worker loads.
const CHILD_VAR: &str = "DEPTHKV_JIT_COMPILE";

/// Lets [`open`] warm the driver's compile cache with worker processes
/// (this same executable, started with [`CHILD_VAR`]); `main` calls it.
pub fn enable_jit_warmup() {
    WARMUP_ENABLED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// In a compile worker, compiles the modules it was started for and returns
/// true (the caller exits); false in every other process.
pub fn jit_child() -> bool {
    let Ok(names) = std::env::var(CHILD_VAR) else { return false };
    #[cfg(not(feature = "cuda"))]
    let _ = names; // nothing to compile without CUDA
    #[cfg(feature = "cuda")]
    if !jit::compile(&names) {
        std::process::exit(1);
    }
    true
}

#[cfg(feature = "cuda")]
fn warm_jit_cache(cuda: &candle_core::CudaDevice) {
    let off = |var: &str, value: &str| std::env::var(var).is_ok_and(|v| v.trim() == value);
    let enabled = WARMUP_ENABLED.load(std::sync::atomic::Ordering::Relaxed);
    if enabled && !off("CUDA_CACHE_DISABLE", "1") && !off("DEPTHKV_JIT_WARMUP", "0") {
        jit::warm(cuda);
    }
}

/// candle 0.11 ships its kernels as PTX, which the driver compiles the first
/// time a process loads each module, one after the other as ops first need
/// them: about 19 s on an H200 for the modules a forward uses, most of a
/// fresh machine's first answer (docs/performance.md). One process compiles
/// one module at a time (measured: threads do not overlap), so worker
/// processes compile them side by side into the driver's on-disk compute
/// cache, from which candle's own loads then read machine code.
#[cfg(feature = "cuda")]
mod jit {
    use candle_core::cuda_backend::cudarc::driver::sys::CUdevice_attribute as Attr;
    use candle_core::cuda_backend::cudarc::driver::CudaContext;
    use candle_core::cuda_backend::cudarc::nvrtc::Ptx;
    use std::path::PathBuf;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    /// The modules a forward uses, in groups of similar compile time on an
    /// H200 (binary 8.8 s; unary 3.4 s; indexing 2.6 s; the rest 4.1 s).
    const GROUPS: [&[&str]; 4] =
        [&["binary"], &["unary"], &["indexing"], &["reduce", "ternary", "cast", "affine", "fill"]];
    /// A worker still compiling after this is left to candle's own load.
    const PATIENCE: Duration = Duration::from_secs(60);

    fn module(name: &str) -> Option<candle_kernels::Module> {
        use candle_kernels::*;
        Some(match name {
            "binary" => BINARY,
            "unary" => UNARY,
            "indexing" => INDEXING,
            "reduce" => REDUCE,
            "ternary" => TERNARY,
            "cast" => CAST,
            "affine" => AFFINE,
            "fill" => FILL,
            _ => return None,
        })
    }

    /// The file that says this cache already holds the modules compiled for
    /// this GPU generation and candle build: it lives in the cache directory,
    /// so clearing the cache clears it too. (A driver update invalidates the
    /// cache but not the marker; the next first run then compiles as
    /// candle alone would.)
    fn marker(cuda: &candle_core::CudaDevice) -> Option<PathBuf> {
        let dir = match std::env::var_os("CUDA_CACHE_PATH") {
            Some(p) => PathBuf::from(p),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".nv/ComputeCache"),
        };
        let ctx = cuda.cuda_stream().context().clone();
        let cc = |a| ctx.attribute(a).unwrap_or(0);
        let (major, minor) = (
            cc(Attr::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
            cc(Attr::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR),
        );
        let ptx: usize = GROUPS.iter().flat_map(|g| g.iter()).filter_map(|n| module(n)).map(|m| m.ptx().len()).sum();
        Some(dir.join(format!("depthkv-jit-sm{major}{minor}-{ptx:x}")))
    }

    /// Starts a worker per group and waits for them, unless the cache is
    /// known to be warm. A failure only leaves the compiling to candle, as
    /// without the warm-up.
    pub fn warm(cuda: &candle_core::CudaDevice) {
        let marker = marker(cuda);
        if marker.as_ref().is_some_and(|m| m.exists()) {
            return;
        }
        let Ok(exe) = std::env::current_exe() else { return };
        let mut workers: Vec<_> = GROUPS
            .iter()
            .filter_map(|group| {
                Command::new(&exe)
                    .env(super::CHILD_VAR, group.join(","))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .ok()
            })
            .collect();
        let started = workers.len();
        let mut succeeded = 0;
        let deadline = Instant::now() + PATIENCE;
        while !workers.is_empty() {
            workers.retain_mut(|w| match w.try_wait() {
                Ok(None) => true,
                Ok(Some(status)) => {
                    succeeded += usize::from(status.success());
                    false
                }
                Err(_) => false,
            });
            if Instant::now() > deadline {
                for w in &mut workers {
                    let _ = w.kill();
                    let _ = w.wait();
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(m) = marker.filter(|_| succeeded == started && started == GROUPS.len()) {
            let _ = std::fs::write(m, b"");
        }
    }

    /// A worker's part: load each named module once on device 0. True when
    /// every one loaded.
    pub fn compile(names: &str) -> bool {
        let Ok(ctx) = CudaContext::new(0) else { return false };
        names.split(',').all(|n| module(n).is_some_and(|m| ctx.load_module(Ptx::from_src(m.ptx())).is_ok()))
    }
}

#[cfg(not(feature = "cuda"))]
fn open_cuda() -> Result<Device> {
    Err(EngineError::CudaNotBuilt)
}

/// Activation and cache dtype: f32 on the CPU (its fast kernels are f32),
/// the requested dtype elsewhere.
pub fn activation_dtype(device: &Device, requested: Option<DType>) -> DType {
    match device {
        Device::Cpu => DType::F32,
        _ => requested.unwrap_or(DType::F32),
    }
}

pub fn describe(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(_) => "cuda:0".to_string(),
        _ => format!("{device:?}"),
    }
}
