#!/usr/bin/python3
"""Side-by-side benchmark: the same training step in minienc and in PyTorch, interleaved in one run.

Step = forward of the encoder stack, mean-squared-error loss against a random target, backward,
AdamW update (torch.optim.AdamW defaults), dropout 0, batch_first, PyTorch's default threading.
Run from the repository root after building:  /usr/bin/python3 scripts/bench_vs_pytorch.py
(needs Debian's python3-torch; prints a markdown table for the README)."""
import argparse
import configparser
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn

WORKS = [
    # name, config, overrides, batch, seq, minienc steps, torch steps
    ("seed block (d 512, 8 heads, d_ff 2048, 1 layer)", "configs/seed_block.ini", [], 32, 64, 10, 10),
    ("toy model (d 64, 4 heads, d_ff 256, 2 layers)", "configs/default.ini", [], 32, 16, 200, 200),
]


def model_config(path, sets):
    cp = configparser.ConfigParser(inline_comment_prefixes=(";",))
    cp.read(path)
    m = dict(cp["model"])
    for s in sets:
        key, value = s.split("=", 1)
        sec, k = key.split(".", 1)
        if sec == "model":
            m[k] = value
    return m


def torch_step_ms(m, batch, seq, steps, warmup=3):
    d = int(m["d_model"])
    layer = nn.TransformerEncoderLayer(
        d, int(m["n_heads"]), int(m.get("d_ff", 2048)), dropout=0.0,
        activation=m.get("activation", "relu"), layer_norm_eps=float(m.get("layer_norm_eps", 1e-5)),
        batch_first=True, norm_first=m.get("norm_first", "false").lower() in ("true", "1", "yes", "on"))
    final = nn.LayerNorm(d) if m.get("final_norm", "false").lower() in ("true", "1", "yes", "on") else None
    enc = nn.TransformerEncoder(layer, int(m.get("n_layers", 1)), norm=final, enable_nested_tensor=False)
    enc.train()
    opt = torch.optim.AdamW(enc.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, seq, d, generator=g)
    t = torch.randn(batch, seq, d, generator=g)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss = ((enc(x) - t) ** 2).mean()
        loss.backward()
        opt.step()
        t1 = time.perf_counter()
        if i >= warmup:
            times.append((t1 - t0) * 1000.0)
    return statistics.median(times)


def minienc_step(binary, cfg, sets, batch, seq, steps):
    cmd = [binary, "bench", cfg, "--batch", str(batch), "--seq", str(seq), "--steps", str(steps), "--json"]
    for s in sets:
        cmd += ["--set", s]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--binary", default="build/minienc")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds per work")
    args = ap.parse_args()
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__} "
          f"({torch.get_num_threads()} threads)\n")
    print("| work | batch x seq | minienc ms/step | PyTorch ms/step | speedup | minienc GFLOP/s | sgemm GFLOP/s | of sgemm | peak/needed |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, cfg, sets, batch, seq, msteps, tsteps in WORKS:
        mine, theirs = [], []
        for _ in range(args.rounds):  # interleaved: minienc, torch, minienc, torch ...
            mine.append(minienc_step(args.binary, cfg, sets, batch, seq, msteps))
            theirs.append(torch_step_ms(model_config(cfg, sets), batch, seq, tsteps))
        best = min(mine, key=lambda r: r["ms_per_step"])
        ms_m, ms_t = best["ms_per_step"], min(theirs)
        print(f"| {name} | {batch} x {seq} | {ms_m:.2f} | {ms_t:.2f} | {ms_t / ms_m:.2f}x | {best['gflops']:.1f} | "
              f"{best['sgemm_gflops']:.1f} | {100 * best['sgemm_ratio']:.0f}% | {best['peak_over_needed']:.2f} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
