#!/usr/bin/env python3
"""How long the CUDA driver takes to JIT-compile candle's PTX modules on this GPU.

candle 0.11 embeds its kernels as PTX only, so a fresh machine compiles each module the first
time a process uses it. This times every module alone, then all of them at once on parallel
threads, then a reload from the driver's compute cache, each from an empty cache directory.
Usage: jit_times.py PTX_DIR OUT.json
"""
import ctypes, json, os, subprocess, sys, tempfile, threading, time

def load_all(names, ptx_dir, parallel):
    cuda = ctypes.CDLL("libcuda.so.1")
    check = lambda r, what: r == 0 or sys.exit(f"{what} failed: {r}")
    check(cuda.cuInit(0), "cuInit")
    dev, ctx = ctypes.c_int(), ctypes.c_void_p()
    check(cuda.cuDeviceGet(ctypes.byref(dev), 0), "cuDeviceGet")
    check(cuda.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev), "ctx")
    times = {}
    def one(name):
        cuda.cuCtxSetCurrent(ctx)
        data = open(os.path.join(ptx_dir, name), "rb").read() + b"\0"
        mod = ctypes.c_void_p()
        t0 = time.perf_counter()
        check(cuda.cuModuleLoadData(ctypes.byref(mod), data), f"load {name}")
        times[name] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    if parallel:
        threads = [threading.Thread(target=one, args=(n,)) for n in names]
        [t.start() for t in threads]
        [t.join() for t in threads]
    else:
        [one(n) for n in names]
    return {"wall_s": round(time.perf_counter() - t0, 3), "per_module_s": times}

def run(mode, names, ptx_dir, cache):
    env = dict(os.environ, CUDA_CACHE_PATH=cache)
    env.pop("CUDA_CACHE_DISABLE", None)
    out = subprocess.run([sys.executable, __file__, "--child", mode, ptx_dir, *names], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)

if __name__ == "__main__":
    if sys.argv[1] == "--child":
        print(json.dumps(load_all(sys.argv[4:], sys.argv[3], sys.argv[2] == "parallel")))
        sys.exit(0)
    ptx_dir, out = sys.argv[1], sys.argv[2]
    names = sorted(n for n in os.listdir(ptx_dir) if n.endswith(".ptx"))
    result = {"modules": {n: os.path.getsize(os.path.join(ptx_dir, n)) for n in names}}
    result["alone_fresh"] = {n: run("serial", [n], ptx_dir, tempfile.mkdtemp())["wall_s"] for n in names}
    cache = tempfile.mkdtemp()
    result["parallel_fresh"] = run("parallel", names, ptx_dir, cache)
    result["serial_from_cache"] = run("serial", names, ptx_dir, cache)
    result["cache_bytes"] = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(cache) for f in fs)
    json.dump(result, open(out, "w"), indent=1)
    print(json.dumps(result, indent=1))
