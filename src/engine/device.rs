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
    }
    Ok(device)
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
