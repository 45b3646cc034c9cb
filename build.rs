//! Compiles our CUDA kernels (src/engine/cuda/*.cu) ahead of time when the
//! `cuda` feature is on: one fatbin per file with machine code for each
//! architecture in `DEPTHKV_CUDA_ARCHS` (default 80,90: A100, H100/H200)
//! and PTX for the lowest as the fallback the driver compiles for others.
//! candle's own kernels already need nvcc for this feature.
use std::path::PathBuf;
use std::process::Command;

const KERNELS: [&str; 3] = ["attention", "elementwise", "softmax"];

fn main() {
    println!("cargo:rerun-if-changed=src/engine/cuda");
    println!("cargo:rerun-if-env-changed=DEPTHKV_CUDA_ARCHS");
    println!("cargo:rerun-if-env-changed=NVCC");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let nvcc = std::env::var("NVCC").unwrap_or_else(|_| "nvcc".into());
    let archs_var = std::env::var("DEPTHKV_CUDA_ARCHS").unwrap_or_else(|_| "80,90".into());
    let mut archs: Vec<u32> = archs_var
        .split(',')
        .map(|a| a.trim().parse().unwrap_or_else(|_| panic!("DEPTHKV_CUDA_ARCHS: {a:?} is not a number like 90")))
        .collect();
    archs.sort_unstable();
    let lowest = archs.first().copied().unwrap_or(80);
    for name in KERNELS {
        let src = format!("src/engine/cuda/{name}.cu");
        let dst = out.join(format!("{name}.fatbin"));
        let mut cmd = Command::new(&nvcc);
        cmd.args(["-fatbin", "-O3", "-o"]).arg(&dst).arg(&src);
        for a in &archs {
            cmd.arg(format!("-gencode=arch=compute_{a},code=sm_{a}"));
        }
        cmd.arg(format!("-gencode=arch=compute_{lowest},code=compute_{lowest}"));
        let status =
            cmd.status().unwrap_or_else(|e| panic!("running {nvcc} for {src}: {e} (the cuda feature needs nvcc)"));
        assert!(status.success(), "{nvcc} failed on {src}");
    }
}
