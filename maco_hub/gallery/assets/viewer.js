"use strict";
(() => {
  const data = JSON.parse(document.getElementById("rows").textContent);
  const { rows, shared, groups } = data;
  const $ = (id) => document.getElementById(id);
  const grid = $("grid"), search = $("search"), toggle = $("alpha-toggle"), count = $("count");
  const empty = $("empty"), view = $("view"), group = $("group"), order = $("order");
  const pager = $("pager"), prev = $("prev"), next = $("next"), status = $("page-status");
  const dialog = $("details"), detailsBody = $("details-body"), position = $("details-position");
  const PAGE_SIZE = { grid: 240, cards: 48 };  // tiles drawn at a time
  const CARDS_UP_TO = 48;  // smaller galleries open as cards, larger ones as the dense grid

  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  };
  const fmt = (x) => typeof x !== "number" ? String(x)
    : (x !== 0 && (Math.abs(x) >= 1e4 || Math.abs(x) < 1e-3)) ? x.toExponential(3) : x.toFixed(3);
  const has = (x) => x !== null && x !== undefined;
  const unitName = (row) => has(row.layer) && has(row.unit) ? `${row.layer}:${row.unit}` : null;
  const caption = (row, i) => row.label ?? row.objective ?? `#${i}`;
  const shortCaption = (row, i) => row.label ?? unitName(row) ?? caption(row, i);
  const recordOf = (row) => has(row.shared) ? { ...shared[row.shared], ...row.record } : row.record ?? {};
  const picture = (row, thumb) => {
    const alpha = toggle.checked && row.transparent;
    if (thumb && row.thumb) return alpha && row.thumb_transparent ? row.thumb_transparent : row.thumb;
    return alpha ? row.transparent : row.image;
  };
  const number = (x) => typeof x === "number" ? x : -1;
  const text = rows.map((r) => [r.label, r.objective, r.layer, unitName(r), r.kind, r.note]
    .filter(has).join(" ").toLowerCase());
  const made = rows.map((_, i) => i);
  const atlas = made.slice().sort((a, b) => rows[a].group - rows[b].group
    || number(rows[a].unit) - number(rows[b].unit)
    || number(rows[a].class_id) - number(rows[b].class_id) || a - b);
  for (const [g, { name, count: n }] of groups.entries()) {
    const option = el("option", null, `${name} (${n})`);
    option.value = String(g);
    group.append(option);
  }
  group.parentElement.hidden = groups.length < 2;
  view.value = rows.length > CARDS_UP_TO ? "grid" : "cards";

  const state = { matches: made, page: 0, shown: [], open: null };

  const image = (row, caption, thumb) => {
    const img = el("img");
    img.loading = "lazy";
    img.decoding = "async";
    img.alt = caption;
    img.src = picture(row, thumb);
    return img;
  };

  // A card: the image, caption, chips and the record (cards view, and the details dialog).
  const card = (i) => {
    const row = rows[i];
    const title = caption(row, i);
    const tile = el("figure", "tile");
    tile.dataset.index = String(i);
    let img = null, link;
    if (row.image) {
      link = el("a", "frame");
      link.href = picture(row, false);
      link.setAttribute("aria-label", `Open the full-size image of ${title}`);
      img = image(row, title, false);
      link.append(img);
    } else {
      link = el("div", "frame missing", "no image");
    }
    const body = el("figcaption", "body");
    body.append(el("p", "caption", title));
    if (has(row.label) && has(row.objective) && row.objective !== row.label) {
      body.append(el("div", "objective", row.objective));
    }
    const meta = el("div", "meta");
    if (has(row.kind)) meta.append(el("span", "chip kind", row.kind));
    if (has(row.layer)) meta.append(el("span", "chip layer", row.layer));
    if (has(row.unit)) meta.append(el("span", "chip unit", `unit ${row.unit}`));
    if (has(row.class_id)) meta.append(el("span", "chip class", `class ${row.class_id}`));
    if (has(row.score)) meta.append(el("span", "chip score", `score ${fmt(row.score)}`));
    if (has(row.seed)) meta.append(el("span", "chip seed", `seed ${row.seed}`));
    if (has(row.steps)) meta.append(el("span", "chip steps", `${row.steps} step${row.steps === 1 ? "" : "s"}`));
    if (has(row.canvas)) meta.append(el("span", "chip canvas", `canvas ${row.canvas} px`));
    if (has(row.note)) meta.append(el("span", "chip note", row.note));
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
    if (typeof row.artifacts === "string") {
      const chip = el("span", "chip artifacts", row.artifacts);
      chip.title = "artifact measures of the picture: a fine pixel lattice (grid), a veil (haze), RMS contrast; "
        + "what photos get is in the notes under the legibility table";
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
                   el("pre", null, JSON.stringify(recordOf(row), null, 2)));
    body.append(details);
    tile.append(link, body);
    return { row, node: tile, img, link, thumb: false, details };
  };

  // A cell of the dense grid: the thumbnail and a short caption; a click opens its details.
  const cell = (i) => {
    const row = rows[i];
    const title = shortCaption(row, i);
    const node = el("button", "cell");
    node.type = "button";
    node.dataset.index = String(i);
    node.title = [caption(row, i), row.objective, row.note, has(row.score) ? `score ${fmt(row.score)}` : null]
      .filter((t, k, all) => has(t) && all.indexOf(t) === k).join("\n");
    const frame = el("span", row.image ? "frame" : "frame missing", row.image ? null : "no image");
    const img = row.image ? image(row, title, true) : null;
    if (img) frame.append(img);
    node.append(frame, el("span", "cell-caption", title));
    if (has(row.note)) node.append(el("span", "cell-note", row.note));  // method, start image, variant
    return { row, node, img, link: null, thumb: true };
  };

  const heading = (g, continued) => el("h2", "group-heading",
    `${groups[g].name} (${groups[g].count})${continued ? " — continued" : ""}`);

  const render = () => {
    const size = PAGE_SIZE[view.value];
    const pages = Math.max(1, Math.ceil(state.matches.length / size));
    state.page = Math.min(Math.max(state.page, 0), pages - 1);
    const start = state.page * size;
    const slice = state.matches.slice(start, start + size);
    const headings = order.value === "atlas" && group.value === "";
    const make = view.value === "grid" ? cell : card;
    const fragment = document.createDocumentFragment();
    let last = start > 0 ? rows[state.matches[start - 1]].group : null;
    state.shown = [];
    for (const [k, i] of slice.entries()) {
      if (headings && (k === 0 || rows[i].group !== last)) {
        fragment.append(heading(rows[i].group, k === 0 && rows[i].group === last));
      }
      last = rows[i].group;
      const tile = make(i);
      state.shown.push(tile);
      fragment.append(tile.node);
    }
    grid.className = `grid view-${view.value}`;
    grid.replaceChildren(fragment);
    count.textContent = `${state.matches.length} of ${rows.length} shown`;
    empty.hidden = state.matches.length > 0;
    pager.hidden = pages < 2;
    prev.disabled = state.page === 0;
    next.disabled = state.page === pages - 1;
    status.textContent = `page ${state.page + 1} of ${pages} · ${start + 1}–${start + slice.length}`;
  };

  const filter = () => {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    const only = group.value === "" ? null : Number(group.value);
    const base = order.value === "atlas" || only !== null ? atlas : made;
    state.matches = base.filter((i) => (only === null || rows[i].group === only)
      && words.every((w) => text[i].includes(w)));
    state.page = 0;
    render();
  };

  const turn = (step) => {
    state.page += step;
    render();
    window.scrollTo(0, 0);
  };

  const showDetails = (i) => {
    state.open = i;
    const tile = card(i);
    tile.node.classList.add("large");
    tile.img?.setAttribute("loading", "eager");
    tile.details.open = true;
    detailsBody.replaceChildren(tile.node);
    const k = state.matches.indexOf(i);
    position.textContent = k >= 0 ? `${k + 1} of ${state.matches.length}` : "";
    $("details-prev").disabled = k <= 0;
    $("details-next").disabled = k < 0 || k >= state.matches.length - 1;
    if (!dialog.open) dialog.showModal();
  };
  const stepDetails = (step) => {
    const k = state.matches.indexOf(state.open) + step;
    if (k >= 0 && k < state.matches.length) showDetails(state.matches[k]);
  };

  const showAlpha = () => {
    document.body.classList.toggle("alpha", toggle.checked);
    for (const t of state.shown) {
      if (!t.img) continue;
      const src = picture(t.row, t.thumb);
      if (t.img.getAttribute("src") !== src) t.img.src = src;
      if (t.link) t.link.href = picture(t.row, false);
    }
    if (dialog.open) showDetails(state.open);
  };

  grid.addEventListener("click", (e) => {
    const target = e.target.closest(".cell");
    if (target) showDetails(Number(target.dataset.index));
  });
  search.addEventListener("input", filter);
  search.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { search.value = ""; filter(); }
  });
  group.addEventListener("change", filter);
  order.addEventListener("change", filter);
  view.addEventListener("change", () => {
    const first = state.page * PAGE_SIZE[view.value === "grid" ? "cards" : "grid"];
    state.page = Math.floor(first / PAGE_SIZE[view.value]);
    render();
  });
  prev.addEventListener("click", () => turn(-1));
  next.addEventListener("click", () => turn(1));
  toggle.addEventListener("change", showAlpha);
  $("details-prev").addEventListener("click", () => stepDetails(-1));
  $("details-next").addEventListener("click", () => stepDetails(1));
  $("details-close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("click", (e) => { if (e.target === dialog) dialog.close(); });
  document.addEventListener("keydown", (e) => {
    if (dialog.open) {
      if (e.key === "ArrowLeft" || e.key === "ArrowRight") stepDetails(e.key === "ArrowLeft" ? -1 : 1);
      return;
    }
    const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement;
    if (e.key === "/" && document.activeElement !== search) { e.preventDefault(); search.focus(); }
    else if (!typing && e.key === "ArrowLeft" && !prev.disabled) turn(-1);
    else if (!typing && e.key === "ArrowRight" && !next.disabled) turn(1);
  });
  filter();
  showAlpha();
})();
