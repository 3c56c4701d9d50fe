#!/usr/bin/python3
"""Acceptance check: `minienc forward` against PyTorch (float64) on random configs that are not among
the committed fixtures. For each config it writes weights and inputs (the fixture script's format),
runs the binary, and prints the worst relative error (max |got - want| / max |want|) of y, dx and
every gradient. Needs Debian's python3-torch; run from the repository root after building:

    /usr/bin/python3 scripts/check_forward_vs_pytorch.py [--cases 12] [--seed 7]
Exits 1 if any tensor is off by more than 1e-5."""
import argparse
import os
import random
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
import make_fixtures as mf  # noqa: E402  (reuses its safetensors writer/reader and model builder)

TOL = 1e-5


def random_case(rng, i):
    heads = rng.choice([1, 2, 3, 4, 6, 8])
    d = heads * rng.choice([2, 3, 4, 5, 8, 16])
    c = {"name": "random%d" % i, "desc": "random config %d" % i, "d": d, "heads": heads,
         "ff": rng.choice([d // 2 + 1, d, 2 * d + 3, 3 * d, 4 * d]), "layers": rng.choice([1, 2, 3]),
         "act": rng.choice(["relu", "gelu"]), "norm_first": rng.random() < 0.5, "final_norm": rng.random() < 0.5,
         "eps": rng.choice([1e-5, 1e-6, 1e-3]), "B": rng.choice([1, 2, 3, 5]), "S": rng.choice([1, 2, 7, 16, 33])}
    return c


def run_case(binary, tmp, c, seed):
    torch.manual_seed(seed)
    model = mf.build_encoder(c)
    mf.randomise(model)
    state = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
    B, S, d = c["B"], c["S"], c["d"]
    x = torch.randn(B, S, d)
    dy = torch.randn(B, S, d)
    mask = None
    if S > 1 and seed % 2:
        lens = torch.randint(1, S + 1, (B,))
        mask = (torch.arange(S)[None, :] >= lens[:, None]).to(torch.uint8)
    m64 = mf.build_encoder(c)
    m64.load_state_dict(state)
    m64 = m64.double()
    y, dx, grads = mf.run_encoder(m64, x.double(), None if mask is None else mask.bool(), dy.double())
    base = os.path.join(tmp, c["name"])
    mf.write_ini(base + ".ini", c)
    mf.st_write(base + ".w.safetensors", [(n, "F32", mf.f32(state[n])) for n in state], {})
    io = [("x", "F32", mf.f32(x)), ("dy", "F32", mf.f32(dy))]
    if mask is not None:
        io.append(("key_padding_mask", "U8", mask.numpy()))
    mf.st_write(base + ".in.safetensors", io, {})
    subprocess.run([binary, "forward", base + ".ini", "--weights", base + ".w.safetensors", "--input",
                    base + ".in.safetensors", "--output", base + ".out.safetensors"], check=True)
    got = mf.st_read(base + ".out.safetensors")[0]
    want = {"y": y.numpy(), "dx": dx.numpy()}
    want.update({"grad." + n: g.numpy() for n, g in grads.items()})
    worst, worst_name = 0.0, ""
    for name, w in want.items():
        g = np.asarray(got[name][1], dtype=np.float64).reshape(w.shape)
        err = float(np.abs(g - w).max() / max(np.abs(w).max(), 1e-30))
        if err > worst:
            worst, worst_name = err, name
    return worst, worst_name


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--binary", default="build/minienc")
    ap.add_argument("--cases", type=int, default=12)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        cases = [random_case(rng, i) for i in range(args.cases)]
        # one case large enough for every threaded path (split matmuls, parallel heads and rows)
        cases.append({"name": "large", "desc": "threaded paths", "d": 128, "heads": 8, "ff": 512, "layers": 2,
                      "act": "gelu", "norm_first": False, "final_norm": True, "eps": 1e-5, "B": 8, "S": 40})
        args.cases = len(cases)
        for i, c in enumerate(cases):
            worst, name = run_case(args.binary, tmp, c, args.seed * 1000 + i)
            ok = worst <= TOL
            bad += not ok
            print("%-9s d %3d heads %d ff %3d layers %d %-4s %s%s eps %g  B %d S %2d  worst %.2e (%s) %s" % (
                c["name"], c["d"], c["heads"], c["ff"], c["layers"], c["act"],
                "pre-LN" if c["norm_first"] else "post-LN", " +final" if c["final_norm"] else "", c["eps"],
                c["B"], c["S"], worst, name, "ok" if ok else "FAIL"))
    print("%d of %d configs within %g" % (args.cases - bad, args.cases, TOL))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
