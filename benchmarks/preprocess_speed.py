"""Per-frame preprocessing time, exact vs fast (engines/preprocess.py), on camera frames, under the device's
Python (it needs only numpy, Pillow and, for the opencv resampler, cv2; no torch):

    .cache/py36/bin/python benchmarks/preprocess_speed.py [--runs 60] [--bundle BUNDLE_DIR] [--json-file PATH]

Frames: the reference photograph chelsea.png resized to 640x480 and 1920x1080, BGR as OpenCV captures them.
Spec: the bundle's (``--bundle``), else DeiT's at 224 px (resize 248 bicubic, crop 224). Each run times one
frame through one path, the paths interleaved run by run (exact, fast with PIL, fast with OpenCV where cv2
imports), wall time (``time.perf_counter``) and this process's CPU time (``time.process_time``, which other
processes on a shared machine disturb less). Prints min/median/max ms per frame, the exact/fast ratio of the
medians, the machine (CPU, cores, load average before and after) and the library versions; ``--json-file``
writes them as JSON.
"""

import argparse
import json
import os
import platform
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from engines import envinfo  # noqa: E402
from engines.preprocess import default_spec, load_image, opencv, preprocess, spec_from_manifest  # noqa: E402

SIZES = ((640, 480), (1920, 1080))


def paths():
    """``{name: (mode, resampler)}`` of the paths to time: exact, fast with PIL, fast with OpenCV (if cv2)."""
    out = {"exact": ("exact", None), "fast-pil": ("fast", "pil")}
    if opencv() is not None:
        out["fast-opencv"] = ("fast", "opencv")
    return out


def stats(values):
    v = sorted(values)
    return {"min": round(v[0] * 1e3, 3), "median": round(float(np.median(v)) * 1e3, 3), "max": round(v[-1] * 1e3, 3)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=60, help="timed runs per path and frame size")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs first, per path and frame size")
    p.add_argument("--bundle", help="take the preprocessing spec from this bundle's manifest")
    p.add_argument("--json-file", help="also write the results as JSON here")
    args = p.parse_args()
    if args.bundle:
        with open(os.path.join(args.bundle, "manifest.json")) as f:
            spec = spec_from_manifest(json.load(f))
    else:
        spec = default_spec([0.485, 0.456, 0.406], [0.229, 0.224, 0.225], 248, 224, "bicubic")
    photo = Image.fromarray(load_image(os.path.join(REPO, "export", "reference", "chelsea.png")))
    frames = {"{}x{}".format(*s): np.ascontiguousarray(np.asarray(photo.resize(s, Image.BICUBIC))[:, :, ::-1])
              for s in SIZES}
    todo = paths()
    load_before = os.getloadavg()
    wall = {(f, n): [] for f in frames for n in todo}
    cpu = {(f, n): [] for f in frames for n in todo}
    for run in range(args.warmup + args.runs):
        for fname, frame in frames.items():
            for name, (mode, resampler) in todo.items():
                t0, c0 = time.perf_counter(), time.process_time()
                preprocess(frame, spec, "bgr", mode, resampler)
                t1, c1 = time.perf_counter(), time.process_time()
                if run >= args.warmup:
                    wall[(fname, name)].append(t1 - t0)
                    cpu[(fname, name)].append(c1 - c0)
    env = envinfo.collect()
    result = {"machine": {"cpu": envinfo.cpu_model(), "cores": os.cpu_count(), "arch": platform.machine(),
                          "load_avg_before": [round(x, 2) for x in load_before],
                          "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
              "versions": {k: env[k] for k in ("python", "numpy", "pillow", "opencv")},
              "spec": {k: spec[k] for k in ("resize", "crop", "interpolation")}, "runs": args.runs, "frames": {}}
    print("machine: {cpu}, {cores} cores ({arch}); load average {load_avg_before} before, {load_avg_after} "
          "after".format(**result["machine"]))
    print("python {python}, numpy {numpy}, Pillow {pillow}, OpenCV {opencv}; {runs} runs per path, interleaved".format(
        runs=args.runs, **result["versions"]))
    for fname in frames:
        rows = {name: {"wall_ms": stats(wall[(fname, name)]), "cpu_ms": stats(cpu[(fname, name)])} for name in todo}
        for name in todo:
            if name != "exact":
                rows[name]["speedup_wall"] = round(rows["exact"]["wall_ms"]["median"] / rows[name]["wall_ms"]["median"], 2)
                rows[name]["speedup_cpu"] = round(rows["exact"]["cpu_ms"]["median"] / rows[name]["cpu_ms"]["median"], 2)
        result["frames"][fname] = rows
        for name, r in rows.items():
            w, c = r["wall_ms"], r["cpu_ms"]
            ratio = "" if name == "exact" else "  exact/fast {:.2f}x wall, {:.2f}x CPU".format(r["speedup_wall"],
                                                                                              r["speedup_cpu"])
            print("{:>9} {:<12} wall {:7.2f} / {:7.2f} / {:7.2f} ms  CPU {:7.2f} / {:7.2f} / {:7.2f} ms "
                  "(min/median/max){}".format(fname, name, w["min"], w["median"], w["max"], c["min"], c["median"],
                                              c["max"], ratio))
    if args.json_file:
        with open(args.json_file, "w") as f:
            json.dump(result, f, indent=2, sort_keys=True)
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
