
"use strict";
(() => {
  const rows = JSON.parse(document.getElementById("rows").textContent);
  const grid = document.getElementById("grid");
  const search = document.getElementById("search");
  const toggle = document.getElementById("alpha-toggle");
  const count = document.getElementById("count");
  const empty = document.getElementById("empty");

  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  };
  const fmt = (x) => typeof x !== "number" ? String(x)
    : (x !== 0 && (Math.abs(x) >= 1e4 || Math.abs(x) < 1e-3)) ? x.toExponential(3) : x.toFixed(3);

  const tiles = rows.map((row, i) => {
    const caption = row.label ?? row.objective ?? `#${i}`;
    const tile = el("figure", "tile");
    tile.dataset.index = String(i);
    let img = null, link = null;
    if (row.image) {
      link = el("a", "frame");
      link.href = row.image;
      link.setAttribute("aria-label", `Open the full-size image of ${caption}`);
      img = el("img");
      img.loading = "lazy";
      img.decoding = "async";
      img.alt = caption;
      img.src = row.image;
      link.append(img);
    } else {
      link = el("div", "frame missing", "no image");
    }
    const body = el("figcaption", "body");
    body.append(el("p", "caption", caption));
    if (row.label !== null && row.objective !== null && row.objective !== row.label) {
      body.append(el("div", "objective", row.objective));
    }
    const meta = el("div", "meta");
    if (row.kind !== null) meta.append(el("span", "chip kind", row.kind));
    if (row.layer !== null) meta.append(el("span", "chip layer", row.layer));
    if (row.unit !== null) meta.append(el("span", "chip unit", `unit ${row.unit}`));
    if (row.class_id !== null) meta.append(el("span", "chip class", `class ${row.class_id}`));
    if (row.score !== null) meta.append(el("span", "chip score", `score ${fmt(row.score)}`));
    if (row.seed !== null) meta.append(el("span", "chip seed", `seed ${row.seed}`));
    if (row.steps !== null) meta.append(el("span", "chip steps", `${row.steps} steps`));
    if (row.canvas !== null) meta.append(el("span", "chip canvas", `canvas ${row.canvas} px`));
    if (row.note !== null) meta.append(el("span", "chip note", row.note));
    for (const v of Array.isArray(row.evaluation) ? row.evaluation : []) {
      if (v.status === "not a class row") continue;
      const judged = v.status === "ok" && typeof v.prob === "number";
      const crops = typeof v.crops_top1 === "number" ? ` · crops ${Math.round(100 * v.crops_top1)} %` : "";
      const chip = el("span", `chip eval ${judged ? (v.top1 ? "hit" : "miss") : ""}`,
                      judged ? `${v.judge} ${v.top1 ? "✓" : "✗"} p ${v.prob.toFixed(2)}${crops}`
                             : `${v.judge}: ${v.status}`);
      chip.title = "judge, top-1 on the whole canvas, probability of the class, top-1 rate on crops";
      meta.append(chip);
    }
    body.append(meta);
    if (row.input) {
      const from = el("a", "input");
      from.href = row.input;
      const thumb = el("img");
      thumb.loading = "lazy";
      thumb.alt = row.input_role ?? "input image";
      thumb.src = row.input;
      from.append(thumb, el("span", null, row.input_role ?? "input image"));
      body.append(from);
    }
    const details = el("details", "record");
    details.append(el("summary", null, "Reproducibility record"),
                   el("pre", null, JSON.stringify(row.record ?? {}, null, 2)));
    body.append(details);
    tile.append(link, body);
    const text = [row.label, row.objective, row.layer, row.note].filter((t) => t !== null && t !== undefined)
      .join(" ").toLowerCase();
    return { row, tile, img, link, text };
  });
  const fragment = document.createDocumentFragment();
  for (const t of tiles) fragment.append(t.tile);
  grid.append(fragment);

  const filter = () => {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const t of tiles) {
      t.tile.hidden = !words.every((w) => t.text.includes(w));
      if (!t.tile.hidden) shown += 1;
    }
    count.textContent = `${shown} of ${tiles.length} shown`;
    empty.hidden = shown > 0;
  };
  const showAlpha = () => {
    document.body.classList.toggle("alpha", toggle.checked);
    for (const t of tiles) {
      if (!t.img) continue;
      const src = toggle.checked && t.row.transparent ? t.row.transparent : t.row.image;
      if (t.img.getAttribute("src") !== src) t.img.src = src;
      t.link.href = src;
    }
  };
  search.addEventListener("input", filter);
  search.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { search.value = ""; filter(); }
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "/" && document.activeElement !== search) { e.preventDefault(); search.focus(); }
  });
  toggle.addEventListener("change", showAlpha);
  filter();
  showAlpha();
})();
