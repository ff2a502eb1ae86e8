"""Two real processes asking for the same entries at the same moment: one builds, the other waits and reuses."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from finsae.activations import open_store

WORKER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import torch
    sys.path.insert(0, {tests!r})
    from act_helpers import SENTENCES, make_corpus
    from finsae.activations import ExtractConfig, build_activations
    from finsae.models import get_spec, load_model

    torch.set_num_threads(1)
    root, me, other = Path({root!r}), sys.argv[1], sys.argv[2]
    model = load_model(get_spec("tiny"))
    calls = []

    def slow_count(*_):
        # Slow every forward down so the build surely overlaps the other process's request.
        calls.append(1)
        time.sleep(0.05)

    model.encoder.register_forward_hook(slow_count)
    corpus = make_corpus([s + f" Number {{i}}." for i, s in enumerate(SENTENCES * 3)])
    (root / f"ready-{{me}}").touch()
    while not (root / f"ready-{{other}}").exists():  # start both requests together
        time.sleep(0.005)
    t0 = time.time()
    stores = build_activations(model, corpus, [0, 1], root, ExtractConfig(max_length=32, batch_size=2),
                               progress=False)
    print(json.dumps({{"fresh": [s.fresh for s in stores.values()], "forwards": len(calls),
                      "seconds": time.time() - t0, "paths": [str(s.path) for s in stores.values()]}}))
""")


def test_two_processes_build_once(tmp_path):
    tests = str(Path(__file__).parent)
    root = tmp_path / "cache"
    root.mkdir()
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=tests, root=str(root)))
    procs = [subprocess.Popen([sys.executable, str(script), me, other], stdout=subprocess.PIPE, text=True)
             for me, other in (("a", "b"), ("b", "a"))]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    results = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    builders = [r for r in results if any(r["fresh"])]
    waiters = [r for r in results if not any(r["fresh"])]
    assert len(builders) == 1 and len(waiters) == 1, results
    assert all(builders[0]["fresh"]) and builders[0]["forwards"] > 0
    assert waiters[0]["forwards"] == 0  # it reused the finished entries
    assert waiters[0]["seconds"] > 0.5  # it really waited on the builder's lock (12 batches x 50 ms)
    assert builders[0]["paths"] == waiters[0]["paths"]
    for path in builders[0]["paths"]:
        store = open_store(path, verify=True)
        assert np.isfinite(np.asarray(store.array).astype(np.float32)).all()
    assert not list(root.glob(".*tmp-*"))
