#!/usr/bin/python3
"""Side-by-side benchmark of minienc and PyTorch, interleaved in one run, with issue 13's targets.

1. Step: the same training step in both — forward of the encoder stack, mean-squared-error loss
   against a random target, backward, AdamW update (torch.optim.AdamW defaults), dropout 0,
   batch_first — for the seed block and the toy model (and the toy model on one thread, minienc
   only). PyTorch runs at its faster of 1 thread and all cores.
2. Race: time to 99% validation token accuracy on the sort task (data/sort/), the same model
   (configs/default.ini: d 64, 4 heads, d_ff 256, 2 layers, learned positions, same init scheme,
   AdamW lr 1e-3 wd 0.01 without decay on LayerNorms and biases, batch 32), evaluated every 10 steps:
   seconds from each process's start (start-up, data loading, import torch included) to the
   evaluation that reached it, and beside it to the process's end (minienc then writes its run files
   and charts). One run per seed; the median over the seeds counts.
3. Targets: every target of issue 13 per round, met or not met (met only if met in every round).

Run from the repository root after building:  /usr/bin/python3 scripts/bench_vs_pytorch.py
(needs Debian's python3-torch). --rounds 2 (default) runs everything twice in a row."""
import argparse
import configparser
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SEED_BLOCK = ("seed block (d 512, 8 heads, d_ff 2048, 1 layer)", "configs/seed_block.ini", 32, 64, 10, 10)
TOY = ("toy model (d 64, 4 heads, d_ff 256, 2 layers)", "configs/default.ini", 32, 16, 200, 200)
RACE_CONFIG = "configs/default.ini"
RACE_DATA = "data/sort"
RACE_TARGET = 0.99
RACE_EVAL_EVERY = 10
RACE_MAX_STEPS = 3000
RACE_SEEDS = (1, 2, 3)


def model_config(path):
    cp = configparser.ConfigParser(inline_comment_prefixes=(";",))
    cp.read(path)
    return dict(cp["model"]), dict(cp["train"]) if cp.has_section("train") else {}


def truthy(v):
    return str(v).lower() in ("true", "1", "yes", "on")


# ---- the step --------------------------------------------------------------------------------

def torch_step_ms(m, batch, seq, steps, threads, warmup=3):
    import torch
    import torch.nn as nn
    torch.set_num_threads(threads)
    d = int(m["d_model"])
    layer = nn.TransformerEncoderLayer(
        d, int(m["n_heads"]), int(m.get("d_ff", 2048)), dropout=0.0,
        activation=m.get("activation", "relu"), layer_norm_eps=float(m.get("layer_norm_eps", 1e-5)),
        batch_first=True, norm_first=truthy(m.get("norm_first", "false")))
    final = nn.LayerNorm(d) if truthy(m.get("final_norm", "false")) else None
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


def minienc_bench(binary, cfg, batch, seq, steps, threads=None):
    cmd = [binary, "bench", cfg, "--batch", str(batch), "--seq", str(seq), "--steps", str(steps), "--json"]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


# ---- the race: PyTorch side (run in a child process, timed from outside) ---------------------

def read_tag_file(path):
    xs, ys = [], []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\r\n")
            if not line or line.startswith("#"):
                continue
            a, b = line.split("\t")
            xs.append([int(t) for t in a.split(" ")])
            ys.append([int(t) for t in b.split(" ")])
    return xs, ys


def torch_race_child(cfg_path, data_dir, seed, threads, target, eval_every, max_steps):
    """Trains the minienc model in PyTorch until the validation token accuracy reaches target; prints JSON."""
    import torch
    import torch.nn as nn
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    m, tr = model_config(cfg_path)
    d, h, ff, nl = int(m["d_model"]), int(m["n_heads"]), int(m.get("d_ff", 2048)), int(m.get("n_layers", 1))
    V = int(m["vocab_size"])
    C = int(m.get("n_classes", V)) or V
    L = int(m.get("max_len", 64))
    batch, lr = int(tr.get("batch_size", 32)), float(tr.get("lr", 1e-3))
    assert float(m.get("dropout", 0.1)) == 0.0 and m.get("positional", "learned") == "learned"

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(V, d)
            self.pos_embed = nn.Embedding(L, d)
            layer = nn.TransformerEncoderLayer(d, h, ff, dropout=0.0, activation=m.get("activation", "relu"),
                                               layer_norm_eps=float(m.get("layer_norm_eps", 1e-5)),
                                               batch_first=True, norm_first=truthy(m.get("norm_first", "false")))
            norm = nn.LayerNorm(d) if truthy(m.get("final_norm", "false")) else None
            self.encoder = nn.TransformerEncoder(layer, nl, norm=norm, enable_nested_tensor=False)
            # minienc draws every layer independently (nn.TransformerEncoder deep-copies one): the same here
            for lyr in self.encoder.layers:
                lyr.self_attn._reset_parameters()  # xavier in_proj, zero attention biases
                nn.init.kaiming_uniform_(lyr.self_attn.out_proj.weight, a=5 ** 0.5)
                lyr.linear1.reset_parameters()
                lyr.linear2.reset_parameters()
            self.head = nn.Linear(d, C)

        def forward(self, tok, pad):
            pos = torch.arange(tok.shape[1])
            x = self.embed(tok) + self.pos_embed(pos)[None]
            return self.head(self.encoder(x, src_key_padding_mask=pad))

    model = Model()
    decay = [p for p in model.parameters() if p.dim() >= 2]       # weights and embeddings
    no_decay = [p for p in model.parameters() if p.dim() < 2]     # biases, LayerNorm gamma and beta
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": float(tr.get("weight_decay", 0.01))},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.999), eps=1e-8)
    xs, ys = read_tag_file(os.path.join(data_dir, "train.txt"))
    vx, vy = read_tag_file(os.path.join(data_dir, "valid.txt"))

    def make_batch(ix, xs_, ys_):
        s = max(len(xs_[i]) for i in ix)
        tok = torch.zeros(len(ix), s, dtype=torch.long)
        tgt = torch.full((len(ix), s), -1, dtype=torch.long)
        pad = torch.ones(len(ix), s, dtype=torch.bool)
        for r, i in enumerate(ix):
            n = len(xs_[i])
            tok[r, :n] = torch.tensor(xs_[i])
            tgt[r, :n] = torch.tensor(ys_[i])
            pad[r, :n] = False
        return tok, pad, tgt

    valid_batches = [make_batch(list(range(i, min(i + batch, len(vx)))), vx, vy) for i in range(0, len(vx), batch)]

    def evaluate():
        model.eval()
        right = total = 0
        with torch.no_grad():
            for tok, pad, tgt in valid_batches:
                pred = model(tok, pad).argmax(-1)
                ok = tgt >= 0
                right += int((pred[ok] == tgt[ok]).sum())
                total += int(ok.sum())
        model.train()
        return right / total

    gen = torch.Generator().manual_seed(seed + 1)
    order, pos = torch.randperm(len(xs), generator=gen).tolist(), 0
    lossf = nn.CrossEntropyLoss(ignore_index=-1)
    acc, step = 0.0, 0
    while step < max_steps:
        ix = []
        while len(ix) < batch:  # a batch runs on into the next epoch, as minienc's sampler does
            if pos == len(order):
                order, pos = torch.randperm(len(xs), generator=gen).tolist(), 0
            ix.append(order[pos])
            pos += 1
        tok, pad, tgt = make_batch(ix, xs, ys)
        opt.zero_grad(set_to_none=False)
        loss = lossf(model(tok, pad).reshape(-1, C), tgt.reshape(-1))
        loss.backward()
        opt.step()
        step += 1
        if step % eval_every == 0:
            acc = evaluate()
            if acc >= target:
                print(f"{REACHED} at step {step}", flush=True)
                break
    print(json.dumps({"step": step, "acc": acc}))


REACHED = "reached train.stop_at_accuracy"  # minienc's note when it stops; the PyTorch child says the same


def timed_process(cmd):
    """Runs cmd; returns (seconds until it printed REACHED or None, seconds until it exited, its output)."""
    t0 = time.perf_counter()
    reached, lines = None, []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as p:
        for line in p.stdout:
            if reached is None and REACHED in line:
                reached = time.perf_counter() - t0
            lines.append(line)
    total = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}:\n{''.join(lines[-20:])}")
    return reached, total, "".join(lines)


def torch_race(seed, threads):
    cmd = [sys.executable, os.path.abspath(__file__), "--torch-race-child", str(seed), str(threads)]
    reached, total, out = timed_process(cmd)
    r = json.loads(out.strip().splitlines()[-1])
    return reached if reached is not None else float("inf"), total, r["step"], r["acc"]


def minienc_race(binary, seed, workdir):
    out_dir = os.path.join(workdir, f"race-{seed}")
    cmd = [binary, "train", RACE_CONFIG, "--force",
           "--set", f"data.train={RACE_DATA}/train.txt", "--set", f"data.valid={RACE_DATA}/valid.txt",
           "--set", f"train.seed={seed}", "--set", f"train.eval_every={RACE_EVAL_EVERY}",
           "--set", f"train.steps={RACE_MAX_STEPS}", "--set", f"train.stop_at_accuracy={RACE_TARGET}",
           "--set", f"log.out_dir={out_dir}"]
    reached, total, _ = timed_process(cmd)
    with open(os.path.join(out_dir, "metrics.csv")) as f:
        last = f.read().strip().splitlines()[-1].split(",")
    shutil.rmtree(out_dir, ignore_errors=True)
    return reached if reached is not None else float("inf"), total, int(last[0]), float(last[6])


# ---- main ------------------------------------------------------------------------------------

def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def verdict(ok):
    return "met" if ok else "not met"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="build/minienc")
    ap.add_argument("--rounds", type=int, default=2, help="rounds in a row, each running everything interleaved")
    ap.add_argument("--seeds", default=",".join(str(s) for s in RACE_SEEDS), help="race seeds, comma-separated")
    ap.add_argument("--skip-race", action="store_true", help="the step benchmarks only")
    args = ap.parse_args()
    import torch
    cores = os.cpu_count() or 1
    torch_threads = sorted({1, cores})
    seeds = [int(s) for s in args.seeds.split(",") if s]
    print(f"machine: {cpu_name()}, {cores} cores; load average {os.getloadavg()[0]:.2f} at the start; "
          f"torch {torch.__version__} (its faster of {' and '.join(map(str, torch_threads))} threads); "
          f"minienc {cores} threads unless noted\n")
    print("| round | work | batch x seq | minienc ms/step | PyTorch ms/step | speedup | minienc GFLOP/s | "
          "sgemm GFLOP/s | of sgemm | peak/needed |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    rounds = []
    workdir = tempfile.mkdtemp(prefix="minienc-race-")
    for rnd in range(1, args.rounds + 1):
        res = {}
        for key, (name, cfg, batch, seq, msteps, tsteps) in (("seed", SEED_BLOCK), ("toy", TOY)):
            mine = minienc_bench(args.binary, cfg, batch, seq, msteps)
            theirs = min(torch_step_ms(model_config(cfg)[0], batch, seq, tsteps, t) for t in torch_threads)
            res[key] = (mine, theirs)
            print(f"| {rnd} | {name} | {batch} x {seq} | {mine['ms_per_step']:.2f} | {theirs:.2f} | "
                  f"{theirs / mine['ms_per_step']:.2f}x | {mine['gflops']:.1f} | {mine['sgemm_gflops']:.1f} | "
                  f"{100 * mine['sgemm_ratio']:.0f}% | {mine['peak_over_needed']:.2f} |")
            sys.stdout.flush()
        name, cfg, batch, seq, msteps, _ = TOY
        one = minienc_bench(args.binary, cfg, batch, seq, msteps, threads=1)
        res["toy1"] = one
        print(f"| {rnd} | {name}, 1 thread | {batch} x {seq} | {one['ms_per_step']:.2f} | - | - | "
              f"{one['gflops']:.1f} | {one['sgemm_gflops']:.1f} (1 thread) | {100 * one['sgemm_ratio']:.0f}% | "
              f"{one['peak_over_needed']:.2f} |")
        sys.stdout.flush()
        if not args.skip_race:
            race = []
            for seed in seeds:  # interleaved: minienc, PyTorch, per seed
                m = minienc_race(args.binary, seed, workdir)
                t = min((torch_race(seed, th) for th in torch_threads), key=lambda r: r[0])
                race.append((seed, m, t))
            res["race"] = race
        rounds.append(res)
    shutil.rmtree(workdir, ignore_errors=True)

    if not args.skip_race:
        print(f"\ntime to {100 * RACE_TARGET:.0f}% validation token accuracy on {RACE_DATA} ({RACE_CONFIG}, "
              f"evaluated every {RACE_EVAL_EVERY} steps): seconds from the process's start to the evaluation "
              f"that reached it, start-up included; then to the process's end (minienc: its run files and "
              f"charts)\n")
        print("| round | seed | minienc s | minienc step | minienc to the end | PyTorch s | PyTorch step | "
              "PyTorch to the end | speedup |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for rnd, res in enumerate(rounds, 1):
            for seed, (mr, mt, ms, _), (tr, tt, ts, _) in res["race"]:
                print(f"| {rnd} | {seed} | {mr:.2f} | {ms} | {mt:.2f} | {tr:.2f} | {ts} | {tt:.2f} | {tr / mr:.2f}x |")
            mm = statistics.median(r[1][0] for r in res["race"])
            tm = statistics.median(r[2][0] for r in res["race"])
            res["race_ratio"] = tm / mm
            print(f"| {rnd} | median | {mm:.2f} | | | {tm:.2f} | | | {tm / mm:.2f}x |")

    targets = [
        ("seed block: >= 88% of the sgemm rate of the same run", lambda r: r["seed"][0]["sgemm_ratio"], 0.88, "%"),
        ("toy model: >= 60% of the sgemm rate (all cores)", lambda r: r["toy"][0]["sgemm_ratio"], 0.60, "%"),
        ("toy model, 1 thread: >= 60% of the 1-thread sgemm rate", lambda r: r["toy1"]["sgemm_ratio"], 0.60, "%"),
        ("memory: peak <= 1.25x what the step needs (seed block)", lambda r: r["seed"][0]["peak_over_needed"], 1.25,
         "max"),
        ("memory: peak <= 1.25x what the step needs (toy model)", lambda r: r["toy"][0]["peak_over_needed"], 1.25,
         "max"),
    ]
    if not args.skip_race:
        targets.append(("time to 99% accuracy: minienc >= 3x faster than PyTorch", lambda r: r["race_ratio"], 3.0,
                        "x"))
    print("\n| target | " + " | ".join(f"round {i}" for i in range(1, len(rounds) + 1)) + " | verdict |")
    print("| --- | " + " | ".join("---" for _ in rounds) + " | --- |")
    for name, get, bound, kind in targets:
        vals = [get(r) for r in rounds]
        ok = all(v <= bound for v in vals) if kind == "max" else all(v >= bound for v in vals)
        cells = [f"{100 * v:.1f}%" if kind == "%" else f"{v:.2f}" + ("x" if kind == "x" else "") for v in vals]
        print(f"| {name} | " + " | ".join(cells) + f" | {verdict(ok)} |")
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--torch-race-child":
        torch_race_child(RACE_CONFIG, RACE_DATA, int(sys.argv[2]), int(sys.argv[3]), RACE_TARGET, RACE_EVAL_EVERY,
                         RACE_MAX_STEPS)
    else:
        main()
