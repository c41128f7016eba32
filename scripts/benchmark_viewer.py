"""The gallery viewer at scale: build a synthetic gallery through the real folder code, then time its
page in headless Chromium (first screen of tiles, filtering) and weigh what it loads.

    python scripts/benchmark_viewer.py --rows 10000 --batch-size 250 --out /tmp/g10k --json v.json
    python scripts/benchmark_viewer.py --rows 2500 5000 10000 --pages every --no-browser   # write cost

Rows are made without a model: images of ``--canvas`` px (smooth colour fields plus noise, so PNGs
weigh what small MACO pictures do), an attribution blob, and records built as ``explain`` builds
them (engine config, shipped spectrum, objective records, batches), stored by
:class:`maco_hub.gallery.folder.GalleryFolder` batch by batch. The first 1000 rows are class rows
(ImageNet labels), the rest channels of several layers in unit order (a layer atlas). ``--pages``
says when the pages are written while the gallery grows: ``paced`` as ``explain`` does (see
:class:`maco_hub.gallery.pages.PageWriter`), ``every`` batch, or at the ``end`` only; the time of
each batch's append and page write is printed at a few gallery sizes.

In the browser (``tests/browser.py``'s headless Chromium, window 1280×900): *first screen* is the
time from navigation start until every tile image inside the window has loaded; *filter* the time
from typing a query (an ``input`` event) until the grid is drawn again (two animation frames);
*loaded* the bytes of ``index.html`` plus every image file the page fetched by then. Each timing
is the median of ``--repeats`` fresh loads. Timings are same-run figures on a shared machine:
compare ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a source checkout

from maco_hub import objectives as obj  # noqa: E402
from maco_hub._version import __version__  # noqa: E402
from maco_hub.gallery.folder import GalleryFolder  # noqa: E402
from maco_hub.gallery.keys import seed_for  # noqa: E402
from maco_hub.gallery.record import BatchMember, RowRecord  # noqa: E402
from maco_hub.gallery.rows import Visualization  # noqa: E402
from maco_hub.objectives.records import objective_to_record  # noqa: E402

LAYERS = (("features.2", 96), ("features.4", 240), ("features.6", 480), ("features.9", 672))
LAYERS += (("features.11", 1152), ("features.12", 1152), ("features.13", 1152), ("features.14", 1920))
LAYERS += (("features.15", 1920),)
LAYERS += (("head", 1280),)  # layers of an atlas and their unit counts: 10064 channels
CLASS_ROWS = 1000
LABELS = ROOT / "maco_hub" / "models" / "efficientnet_lite" / "imagenet_labels.txt"
QUERIES = ("features.9", "tabby", "features.15:17", "zzz", "")


def objectives_for(rows: int, classes: int = CLASS_ROWS) -> list[obj.Objective]:
    """``rows`` objectives: ``classes`` ImageNet classes first, then every channel of each layer
    in unit order."""
    labels = LABELS.read_text(encoding="utf-8").splitlines()
    chosen: list[obj.Objective] = [obj.ClassLogit(i, label=labels[i]) for i in range(min(rows, classes))]
    if rows > classes + sum(units for _, units in LAYERS):
        raise SystemExit(f"--rows {rows}: at most {classes + sum(u for _, u in LAYERS)} rows")
    layers = iter(LAYERS)
    while len(chosen) < rows:
        layer, units = next(layers)
        count = min(units, rows - len(chosen))
        chosen += [obj.Channel(layer, unit, layer_kind="conv") for unit in range(count)]
    return chosen


def _pictures(rng: np.random.Generator, canvas: int) -> tuple[Image.Image, Image.Image]:
    y, x = np.mgrid[0:canvas, 0:canvas] / canvas
    f = rng.uniform(2, 9, size=(3, 2))
    phase = rng.uniform(0, 6.3, size=3)
    rgb = np.stack([np.sin(f[c, 0] * x + f[c, 1] * y + phase[c]) for c in range(3)], axis=-1)
    rgb = np.clip(127 + 90 * rgb + rng.normal(0, 18, size=rgb.shape), 0, 255).astype(np.uint8)
    cy, cx = rng.uniform(0.3, 0.7, size=2)
    alpha = (255 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 0.05)).astype(np.uint8)
    return Image.fromarray(rgb, mode="RGB"), Image.fromarray(alpha, mode="L")


def synthetic_batches(rows: int, batch_size: int, canvas: int, *, classes: int = CLASS_ROWS, seed: int = 0):
    """Lists of :class:`Visualization` of ``batch_size`` rows each, with records as ``explain``
    makes them (engine config, shipped spectrum's reference, the batch's members)."""
    from maco_hub.engine.config import EngineConfig
    from maco_hub.spectra.loading import load_spectrum

    config = EngineConfig(steps=1, canvas=canvas).to_record()
    spectrum = load_spectrum().reference()
    rng = np.random.default_rng(seed)
    plan = [(o, seed_for(seed, objective_to_record(o))) for o in objectives_for(rows, classes)]
    common = {
        "model_id": "synthetic/tiny-model",
        "model_revision": "0123456789abcdef0123456789abcdef01234567",
        "preprocessing": {"mean": [0.5] * 3, "std": [0.5] * 3, "size": 224, "resample": "bicubic"},
        "spectrum": spectrum,
        "config": config,
        "device": "cpu",
        "maco_hub_version": __version__,
        "python_version": platform.python_version(),
        "engine_settings": {"threads": 1, "crops_per_forward": 4, "resample": "per_crop"},
    }
    for start in range(0, len(plan), batch_size):
        batch = plan[start : start + batch_size]
        members = tuple(BatchMember(objective_to_record(o), s) for o, s in batch)
        items = []
        for objective, row_seed in batch:
            image, alpha = _pictures(rng, canvas)
            record = RowRecord(
                objective=objective.description,
                objective_record=objective_to_record(objective),
                seed=row_seed,
                batch=members,
                **common,
            )
            items.append(
                Visualization(
                    image=image,
                    alpha=alpha,
                    score=float(rng.normal(5, 3)),
                    objective=objective.description,
                    kind=objective.kind,
                    layer=objective.layer,
                    unit=objective.unit,
                    class_id=objective.class_id,
                    label=objective.label,
                    record=record,
                )
            )
        yield items


def build(
    folder: Path,
    rows: int,
    *,
    batch_size: int,
    canvas: int,
    pages: str,
    classes: int = CLASS_ROWS,
    report_at=(),
) -> dict:
    """Write the synthetic gallery into ``folder`` batch by batch; the append and page-writing
    time of each batch, and the totals."""
    store = GalleryFolder.open(folder)
    writer = _page_writer(store, pages)
    batches, start = [], time.perf_counter()
    for items in synthetic_batches(rows, batch_size, canvas, classes=classes):
        t0 = time.perf_counter()
        store.append(items)
        t1 = time.perf_counter()
        wrote = writer(False)
        t2 = time.perf_counter()
        batches.append({"rows": len(store), "append_s": t1 - t0, "pages_s": t2 - t1, "wrote": wrote})
        if len(store) in report_at:
            print(f"  {len(store):6d} rows: append {t1 - t0:.3f} s, pages {t2 - t1:.3f} s", flush=True)
    t0 = time.perf_counter()
    wrote = writer(True)
    final = time.perf_counter() - t0
    return {
        "rows": len(store),
        "total_s": time.perf_counter() - start,
        "final_pages_s": final,
        "pages_total_s": sum(b["pages_s"] for b in batches) + final,
        "page_writes": sum(b["wrote"] for b in batches) + wrote,
        "batches": batches,
    }


def _page_writer(store: GalleryFolder, pages: str):
    """``write(final) -> bool`` (whether it wrote), after each batch and once at the end, for the
    ``--pages`` choice."""
    from maco_hub.gallery.pages import write_pages

    if pages == "every":
        return lambda final: not final and (write_pages(store) or True)
    if pages == "end":
        return lambda final: final and (write_pages(store) or True)
    from maco_hub.gallery.pages import PageWriter

    paced = PageWriter(store)
    return lambda final: paced.finish() if final else paced.batch_done()


def weigh(folder: Path) -> dict:
    """Bytes of the page, its thumbnails and full-size images."""
    size = lambda pattern: sum(p.stat().st_size for p in folder.glob(pattern))  # noqa: E731
    return {
        "index_bytes": (folder / "index.html").stat().st_size,
        "thumb_bytes": size("thumbs/*"),
        "image_bytes": size("images/*"),
    }


_FIRST_SCREEN = """
const done = arguments[arguments.length - 1];
const check = () => {
  const imgs = [...document.querySelectorAll("#grid img")].filter((i) => {
    const r = i.getBoundingClientRect();
    return r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth;
  });
  if (imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0)) {
    const loaded = [...document.querySelectorAll("img")].filter((i) => i.complete && i.naturalWidth > 0);
    done({ms: performance.now(), tiles: imgs.length, fetched: loaded.map((i) => i.currentSrc)});
  } else requestAnimationFrame(check);
};
check();
"""

_FILTER = """
const [query, done] = [arguments[0], arguments[arguments.length - 1]];
const search = document.getElementById("search");
const start = performance.now();
search.value = query;
search.dispatchEvent(new Event("input", {bubbles: true}));
requestAnimationFrame(() => requestAnimationFrame(() => done({
  ms: performance.now() - start, count: document.getElementById("count").textContent})));
"""


def measure(driver, page: Path, *, repeats: int = 3) -> dict:
    """First screen, bytes loaded by then, and filter times of ``page`` (medians of ``repeats``)."""
    driver.set_script_timeout(60)
    firsts, filters, loaded = [], {q: [] for q in QUERIES}, []
    counts: dict[str, str] = {}
    for _ in range(repeats):
        driver.get("about:blank")
        driver.get(page.as_uri())
        first = driver.execute_async_script(_FIRST_SCREEN)
        firsts.append(first["ms"])
        files = {Path(unquote(urlsplit(name).path)) for name in first["fetched"] if name.startswith("file:")}
        loaded.append(page.stat().st_size + sum(f.stat().st_size for f in files if f.is_file()))
        for query in QUERIES:
            result = driver.execute_async_script(_FILTER, query)
            filters[query].append(result["ms"])
            counts[query] = result["count"]
    return {
        "first_screen_ms": statistics.median(firsts),
        "first_screen_ms_all": firsts,
        "tiles_on_first_screen": first["tiles"],
        "loaded_bytes": statistics.median(loaded),
        "filter_ms": {q: statistics.median(v) for q, v in filters.items()},
        "filter_counts": counts,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000], help="gallery sizes to build")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--canvas", type=int, default=64)
    parser.add_argument("--pages", choices=("paced", "every", "end"), default="paced")
    parser.add_argument("--out", type=Path, default=Path("viewer-benchmark"), help="folder for the galleries")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true", help="build and weigh only")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    results = []
    for rows in args.rows:
        folder = args.out / f"rows-{rows}"
        if folder.exists():
            parser.error(f"{folder} exists; pass another --out or remove it")
        print(f"building {rows} rows in {folder} (batches of {args.batch_size}, pages {args.pages})")
        marks = {min(rows, n) for n in (args.batch_size, rows // 4, rows // 2, rows)}
        marks = {((m + args.batch_size - 1) // args.batch_size) * args.batch_size for m in marks}
        built = build(
            folder, rows, batch_size=args.batch_size, canvas=args.canvas, pages=args.pages, report_at=marks
        )
        result = {"rows": rows, "build": built, **weigh(folder)}
        print(
            f"  built in {built['total_s']:.1f} s; pages written {built['page_writes']} times, "
            f"{built['pages_total_s']:.1f} s in all (last {built['final_pages_s']:.2f} s); index.html "
            f"{result['index_bytes'] / 1e6:.2f} MB, thumbnails {result['thumb_bytes'] / 1e6:.1f} MB"
        )
        if not args.no_browser:
            sys.path.insert(0, str(ROOT / "tests"))
            from browser import headless_chromium

            with headless_chromium() as driver:
                result["browser"] = measure(driver, folder / "index.html", repeats=args.repeats)
            b = result["browser"]
            print(
                f"  first screen {b['first_screen_ms']:.0f} ms ({b['tiles_on_first_screen']} tiles), "
                f"loaded {b['loaded_bytes'] / 1e6:.2f} MB; filter "
                + ", ".join(f"{q or '(cleared)'!r} {ms:.0f} ms" for q, ms in b["filter_ms"].items())
            )
        results.append(result)
    info = {"threads": os.environ.get("OMP_NUM_THREADS"), "cpus": os.cpu_count(), "results": results}
    if args.json:
        args.json.write_text(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
