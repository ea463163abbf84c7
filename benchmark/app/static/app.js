// The app's behaviour: plain DOM, no framework, no build step, no request to another host.
// Text from the server or a file name is always set with textContent, never parsed as HTML.
"use strict";

const state = { run: null, model: null, results: [], metrics: null };
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

const percent = (p) => `${(100 * p).toFixed(1)}%`;
const number = (v) => (typeof v === "number" && !Number.isInteger(v) ? v.toFixed(4) : v ?? "");

function showMessage(text) {
  $("message").textContent = text;
  $("message").hidden = !text;
}

async function getJSON(url) {
  const response = await fetch(url);
  const body = await response.json().catch(() => ({ error: `${url}: ${response.statusText}` }));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// ---- tabs --------------------------------------------------------------------------------------
function selectTab(name) {
  for (const button of document.querySelectorAll("#tabs button")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === name));
  }
  for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.id !== name;
}

// ---- classify ----------------------------------------------------------------------------------
async function classify(files) {
  if (!files.length) return;
  showMessage("");
  const form = new FormData();
  form.append("model", state.model);
  for (const file of files) form.append("files", file, file.name);
  $("status").textContent = `Classifying ${files.length} photo(s)…`;
  const previews = new Map([...files].map((f) => [f.name, URL.createObjectURL(f)]));
  try {
    const response = await fetch("/api/predict", { method: "POST", body: form });
    const body = await response.json().catch(() => ({ error: "the server sent no answer" }));
    if (!response.ok) throw new Error(body.error || response.statusText);
    const refused = body.results.filter((r) => !r.ok);
    if (refused.length) showMessage(refused.map((r) => r.error).join("\n"));
    const cards = body.results.map((result) => {
      result.model = body.model;
      result.runtime = body.runtime;
      return result.ok ? card(result, previews.get(result.file)) : refusedCard(result);
    });
    state.results.push(...body.results);  // in the order classified: the CSV's order
    $("results").prepend(...cards);  // the newest batch first, in the order it was chosen
    $("threshold").textContent = `"Unlike the training data" warning: top-1 confidence ${body.threshold_note}.`;
    const done = body.results.length - refused.length;
    $("status").textContent = `${done} classified with ${body.model}, ${body.runtime}` +
      (refused.length ? `, ${refused.length} refused` : "");
  } catch (err) {
    showMessage(`Could not classify: ${err.message}`);
    $("status").textContent = "";
  }
  $("download").disabled = $("clear").disabled = !state.results.some((r) => r.ok);
}

function card(result, preview) {
  const bars = el("div", { class: "bars" }, result.top.map((t, i) => el("div", { class: i ? "bar" : "bar top" }, [
    el("span", { class: "name", text: t.label }),
    el("span", { class: "track" }, [el("span", { class: "fill", style: `width:${percent(t.probability)}` })]),
    el("span", { class: "value", text: percent(t.probability) }),
  ])));
  const images = el("div", { class: "images" }, [
    el("figure", {}, [el("img", { src: preview || "", alt: `uploaded photo ${result.file}` }),
      el("figcaption", { text: `photo (${result.width}×${result.height})` })]),
    el("figure", {}, result.gradcam
      ? [el("img", { src: result.gradcam, alt: "Grad-CAM heatmap" }),
        el("figcaption", { text: `where it looked (Grad-CAM, ${result.gradcam_layer})` })]
      : [el("figcaption", { text: `no heatmap: ${result.gradcam_note}` })]),
  ]);
  const parts = [
    el("div", { class: "card-head" }, [
      el("span", { class: "label", text: result.label }),
      el("span", { class: "confidence", text: percent(result.confidence) }),
      el("span", { class: "file", text: result.file, title: result.file }),
    ]),
    images,
  ];
  if (result.unlike) {
    parts.push(el("p", { class: "warning", text: "This photo looks unlike the training data: the " +
      "model is less sure of it than of almost every validation photo, so treat the answer as a guess." }));
  }
  parts.push(bars);
  const camTime = result.gradcam_ms ? `, Grad-CAM ${result.gradcam_ms} ms` : "";
  parts.push(el("div", { class: "timing", text: `${result.runtime}: ${result.ms} ms for this photo${camTime}` }));
  return el("article", { class: "card", "data-file": result.file, "data-label": result.label }, parts);
}

function refusedCard(result) {
  return el("article", { class: "card refused", "data-file": result.file }, [
    el("strong", { text: "Refused " }), el("span", { text: result.error }),
  ]);
}

function csvCell(value) {
  const text = String(value ?? "");
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function downloadCsv() {
  const ok = state.results.filter((r) => r.ok);
  const k = Math.max(...ok.map((r) => r.top.length));
  const header = ["file", "model", "runtime", "unlike_training_data", "ms"];
  for (let i = 1; i <= k; i++) header.push(`label_${i}`, `prob_${i}`);
  const rows = ok.map((r) => [r.file, r.model, r.runtime, r.unlike, r.ms,
    ...r.top.flatMap((t) => [t.label, t.probability.toFixed(6)])]);
  const text = [header, ...rows].map((row) => row.map(csvCell).join(",")).join("\n") + "\n";
  const link = el("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })),
    download: "predictions.csv" });
  document.body.append(link);
  link.click();
  link.remove();
}

function wireUploads() {
  const drop = $("drop");
  for (const id of ["files", "camera"]) {
    $(id).addEventListener("change", (event) => {
      classify([...event.target.files]);
      event.target.value = "";
    });
  }
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    classify([...event.dataTransfer.files]);
  });
  $("download").addEventListener("click", downloadCsv);
  $("clear").addEventListener("click", () => {
    state.results = [];
    $("results").replaceChildren();
    showMessage("");
    $("status").textContent = "";
    $("download").disabled = $("clear").disabled = true;
  });
}

// ---- results tabs ------------------------------------------------------------------------------
function tableOf(columns, rows, { current = null, textColumns = [] } = {}) {
  const head = el("tr", {}, columns.map((c) => el("th", textColumns.includes(c) ? { class: "text", text: c } : { text: c })));
  const body = rows.map((row) => el("tr", current && current(row) ? { class: "current" } : {},
    row.map((v, i) => el("td", textColumns.includes(columns[i]) ? { class: "text", text: number(v) } : { text: number(v) }))));
  return el("table", {}, [el("thead", {}, [head]), el("tbody", {}, body)]);
}

function renderBoard() {
  const board = state.run.leaderboard;
  if (!board) { $("board").textContent = "This run has no leaderboard.csv."; return; }
  const chosen = state.run.models.find((m) => m.key === state.model);
  const model = board.columns.indexOf("model");
  const alpha = board.columns.indexOf("alpha");
  $("board").replaceChildren(tableOf(board.columns, board.rows, {
    current: (row) => chosen && row[model] === chosen.model && Number(row[alpha]) === Number(chosen.alpha),
    textColumns: ["model", "worst_class", "status"],
  }));
}

function renderCosts() {
  const costs = state.run.deployment;
  if (!costs) { $("costs").textContent = "This run was not profiled (no deployment.csv)."; return; }
  $("costs").replaceChildren(tableOf(costs.columns, costs.rows,
    { textColumns: ["model", "format", "precision", "status", "device", "note", "error"] }));
}

function renderPlots() {
  const plots = state.run.plots;
  if (!plots.length) { $("gallery").textContent = "This run wrote no plots."; return; }
  $("gallery").replaceChildren(...plots.map((name) => el("figure", {}, [
    el("a", { href: `/run/${name}`, target: "_blank" }, [el("img", { src: `/run/${name}`, alt: name })]),
    el("figcaption", { text: name.replace(/^plots\//, "") }),
  ])));
}

function renderClasses() {
  const metrics = state.metrics;
  const split = $("split").value;
  const part = metrics && metrics.splits[split];
  $("classes-title").textContent = part
    ? `${metrics.cell_id} on ${split} (as the run scored it, in Keras): accuracy ${percent(part.accuracy)}, ` +
      `macro-F1 ${number(part.macro_f1)}`
    : "This cell has no per-class metrics.";
  if (!part) { $("per-class").replaceChildren(); $("confusion").replaceChildren(); return; }
  const rows = metrics.class_names.map((name) => {
    const m = part.per_class[name] || {};
    return [name, m.precision, m.recall, m.f1, m.support];
  });
  const table = tableOf(["class", "precision", "recall", "f1", "support"], rows, { textColumns: ["class"] });
  for (const row of table.querySelectorAll("tbody tr")) {  // a bar beside each F1
    const cell = row.children[3];
    const value = Number(cell.textContent) || 0;
    cell.className = "cell-bar";
    cell.prepend(el("span", { class: "mini", style: `width:${(value * 4).toFixed(2)}rem` }));
  }
  $("per-class").replaceChildren(table);
  const matrix = part.confusion_matrix || [];
  const peak = Math.max(1, ...matrix.flat());
  const head = el("tr", {}, [el("th", { text: "true \\ predicted" }), ...metrics.class_names.map((n) => el("th", { text: n }))]);
  const body = matrix.map((row, i) => el("tr", {}, [el("th", { text: metrics.class_names[i] }),
    ...row.map((count, j) => el("td", {
      text: count,
      style: `background: rgba(${i === j ? "31,122,90" : "161,42,42"}, ${(0.08 + 0.7 * count / peak).toFixed(2)})`,
    }))]));
  $("confusion").replaceChildren(el("table", { class: "confusion" }, [el("thead", {}, [head]), el("tbody", {}, body)]));
}

async function chooseModel(key) {
  state.model = key;
  const m = state.run.models.find((choice) => choice.key === key);
  const profiled = m.profiled_ms == null ? "" : `; ${m.profiled_ms.toFixed(2)} ms per image when the run was profiled`;
  $("model-info").textContent = `Cell ${m.cell_id}, ${m.image_size} px, ${m.runtime}${profiled}.`;
  renderBoard();
  try {
    state.metrics = await getJSON(`/api/model/${encodeURIComponent(key)}`);
    const splits = Object.keys(state.metrics.splits);
    const previous = $("split").value;
    $("split").replaceChildren(...splits.map((s) => el("option", { value: s, text: s })));
    if (splits.includes(previous)) $("split").value = previous;
    else if (splits.includes("test")) $("split").value = "test";
    $("threshold").textContent = `"Unlike the training data" warning: top-1 confidence ${state.metrics.threshold_note}.`;
  } catch (err) {
    state.metrics = null;
    showMessage(`Could not read the model's metrics: ${err.message}`);
  }
  renderClasses();
}

async function start() {
  for (const button of document.querySelectorAll("#tabs button")) {
    button.addEventListener("click", () => selectTab(button.dataset.tab));
  }
  wireUploads();
  try {
    state.run = await getJSON("/api/run");
  } catch (err) {
    showMessage(`Could not read the run: ${err.message}`);
    return;
  }
  const run = state.run;
  $("run-name").textContent = `run: ${run.name}`;
  $("run-name").title = run.run;
  const limits = run.limits;
  $("limits").textContent = `${limits.accepted}; up to ${Math.round(limits.bytes / 2 ** 20)} MB and ` +
    `${Math.round(limits.pixels / 1e6)} megapixels each, ${limits.files} per batch.`;
  const best = run.models[0].cell_id;
  $("model").replaceChildren(...run.models.map((m) => el("option", {
    value: m.key,
    text: `${m.model} · ${m.runtime} · val ${percent(m.val_accuracy ?? 0)}${m.cell_id === best ? " · best" : ""}`,
  })));
  $("model").value = run.default;
  $("model").addEventListener("change", (event) => chooseModel(event.target.value));
  $("split").addEventListener("change", renderClasses);
  if (!run.has_report) $("report-link").remove();
  renderCosts();
  renderPlots();
  await chooseModel(run.default);
  document.body.dataset.ready = "true";  // the browser tests wait for this
}

start();
