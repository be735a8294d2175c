// The page around the WebAssembly engine (mr2ct_web.js, built by scripts/build_web.sh): reads
// the visitor's files into memory, hands their bytes to the engine, draws MRI and sCT side by
// side and offers the results as downloads. Its only requests go to this page's own origin
// (its code and the weights); the images and the results stay in the page.
import init, { Session } from "./mr2ct_web.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const WEIGHTS = "weights/unet.safetensors";

let session = null;
let adapter = null;
let shown = null; // { rows, cols, slices, mri, sct, mriLo, mriHi }
const urls = [];

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

async function main() {
  if (!navigator.gpu) {
    throw new Error("this browser has no WebGPU (navigator.gpu is missing): use Chrome or Edge 113+, Safari 26+ or Firefox 141+ (Windows)");
  }
  await init();
  session = await Session.open();
  adapter = JSON.parse(session.adapter());
  // wgpu's WebGPU backend leaves the adapter's name empty; the browser's GPUAdapterInfo
  // says which one it is (e.g. "google swiftshader").
  if (!adapter.name) {
    const info = (await navigator.gpu.requestAdapter({ powerPreference: "high-performance" }))?.info;
    adapter.name = info ? [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" ") : "WebGPU adapter";
  }
  $("adapter").textContent = `Adapter: ${adapter.name} (${adapter.backend}, ${adapter.device_type}${adapter.driver ? ", " + adapter.driver : ""})`;
  const response = await fetch(WEIGHTS);
  if (!response.ok) throw new Error(`${WEIGHTS}: HTTP ${response.status}`);
  const weights = new Uint8Array(await response.arrayBuffer());
  const model = session.load_weights("unet.safetensors", weights);
  $("model").textContent = `Model: ${model} (${WEIGHTS}, ${(weights.length / 1e6).toFixed(1)} MB from this site)`;
  wireInputs();
  wireBench();
  if (params.has("test")) await runTest(params.get("test"));
}

// ---- input ------------------------------------------------------------------------------

async function filesFromList(list) {
  const out = [];
  for (const f of list) {
    out.push({ name: f.webkitRelativePath || f.name, bytes: new Uint8Array(await f.arrayBuffer()) });
  }
  return out;
}

function readEntries(reader) {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

async function filesFromEntry(entry, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ name: entry.fullPath.replace(/^\//, ""), bytes: new Uint8Array(await file.arrayBuffer()) });
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    // readEntries hands out a directory in chunks; an empty chunk ends it.
    for (let chunk = await readEntries(reader); chunk.length; chunk = await readEntries(reader)) {
      for (const e of chunk) await filesFromEntry(e, out);
    }
  }
}

function wireInputs() {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const entries = [...e.dataTransfer.items].map((i) => i.webkitGetAsEntry()).filter(Boolean);
    const files = [];
    for (const entry of entries) await filesFromEntry(entry, files);
    await run(files);
  });
  for (const id of ["pick-folder", "pick-file"]) {
    $(id).addEventListener("change", async (e) => run(await filesFromList(e.target.files)));
  }
  $("slice").addEventListener("input", draw);
  $("preset").addEventListener("change", () => {
    const [l, w] = $("preset").value.split(",");
    $("level").value = l;
    $("width").value = w;
    draw();
  });
  $("level").addEventListener("input", draw);
  $("width").addEventListener("input", draw);
}

// ---- translate and show -----------------------------------------------------------------

async function translate(files) {
  if (!files.length) throw new Error("no files were given");
  // Without a .nii/.mha file the files are a DICOM series; anything else in the folder is
  // reported by the engine as skipped, with its reason.
  const grid = files.filter((f) => /\.(nii|nii\.gz|mha)$/i.test(f.name));
  const chosen = grid.length === 1 ? grid : files;
  setStatus(`Translating ${chosen.length} file(s) on ${adapter.name}…`);
  const t0 = performance.now();
  const r = await session.translate(chosen.map((f) => f.name), chosen.map((f) => f.bytes));
  const seconds = (performance.now() - t0) / 1000;
  const report = JSON.parse(r.report);
  report.seconds = seconds;
  report.adapter = adapter;
  show(r, report);
  return { r, report };
}

async function run(files) {
  try {
    await translate(files);
  } catch (e) {
    setStatus(`Error: ${e.message || e}`, true);
  }
}

function percentile(values, p) {
  const step = Math.max(1, Math.floor(values.length / 200000));
  const s = [];
  for (let i = 0; i < values.length; i += step) s.push(values[i]);
  s.sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

function show(r, report) {
  for (const u of urls.splice(0)) URL.revokeObjectURL(u);
  const mri = r.mri;
  shown = {
    rows: r.rows, cols: r.cols, slices: r.slices, mri, sct: r.sct,
    mriLo: percentile(mri, 0.5), mriHi: percentile(mri, 99.5),
  };
  for (const id of ["mri", "sct"]) {
    $(id).width = r.cols;
    $(id).height = r.rows;
  }
  const sp = report.pixel_spacing;
  const aspect = sp ? (r.rows * sp[0]) / (r.cols * sp[1]) : r.rows / r.cols;
  for (const id of ["mri", "sct"]) $(id).style.height = `${512 * aspect}px`;
  $("slice").max = r.slices;
  $("slice").value = Math.ceil(r.slices / 2);
  $("result").hidden = false;
  const link = (id, bytes, type) => {
    const u = URL.createObjectURL(new Blob([bytes], { type }));
    urls.push(u);
    $(id).href = u;
  };
  link("dl-nifti", r.nifti, "application/gzip");
  link("dl-dicom", r.dicom_zip, "application/zip");
  const hu = report.hu;
  $("summary").textContent =
    `${r.slices} slice(s) of ${r.rows}×${r.cols}; sCT HU min ${hu.min.toFixed(0)}, max ${hu.max.toFixed(0)}, mean ${hu.mean.toFixed(1)}; ` +
    `${report.seconds.toFixed(1)} s on ${adapter.name}` +
    (report.skipped.length ? `; ${report.skipped.length} file(s) skipped` : "");
  const notes = report.skipped.concat(report.warnings);
  setStatus(`Done in ${report.seconds.toFixed(1)} s.` + (notes.length ? "\n" + notes.join("\n") : ""));
  draw();
}

function draw() {
  if (!shown) return;
  const { rows, cols, slices, mri, sct, mriLo, mriHi } = shown;
  const k = Math.min(slices, Math.max(1, Number($("slice").value))) - 1;
  $("slice-out").textContent = `${k + 1} / ${slices}`;
  const level = Number($("level").value);
  const width = Math.max(1, Number($("width").value));
  const plane = rows * cols;
  const paint = (canvas, values, lo, hi) => {
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(cols, rows);
    const scale = 255 / Math.max(hi - lo, 1e-6);
    for (let i = 0; i < plane; i++) {
      const g = Math.max(0, Math.min(255, (values[k * plane + i] - lo) * scale));
      img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = g;
      img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  };
  paint($("mri"), mri, mriLo, mriHi);
  paint($("sct"), sct, level - width / 2, level + width / 2);
}

// ---- bench ------------------------------------------------------------------------------

let benchJson = null;

function benchTable(json) {
  const b = JSON.parse(json);
  const lines = [`adapter: ${b.adapter.name} (${b.adapter.backend}, ${b.adapter.device_type})`,
    `timing: ${b.timing}; median of ${b.iters} runs after ${b.warmup} warm-up`, ""];
  lines.push(`${"kernel".padEnd(33)} ${"layer".padEnd(27)} batch        ms   GFLOP/s     GB/s`);
  for (const k of b.kernels) {
    lines.push(
      `${k.name.padEnd(33)} ${k.layer.padEnd(27)} ${String(k.batch).padStart(5)} ${k.median_ms.toFixed(2).padStart(9)} ` +
      `${k.gflops.toFixed(2).padStart(9)} ${k.gbps.toFixed(2).padStart(8)}`);
  }
  lines.push("");
  for (const t of b.train) {
    lines.push(`training iteration, ${t.model} model ${t.size}x${t.size}, batch ${t.batch}: median ${t.median_s.toFixed(3)} s ` +
      `over ${t.iters} (first, with pipeline compilation: ${t.first_s.toFixed(3)} s)`);
  }
  return lines.join("\n");
}

async function runBench() {
  $("bench-run").disabled = true;
  $("bench-table").textContent = "Running (the first runs compile the kernels)…";
  try {
    const b = JSON.parse(await session.bench(Number($("bench-batch").value)));
    if (!b.adapter.name) b.adapter.name = adapter.name;
    benchJson = JSON.stringify(b, null, 2);
    $("bench-table").textContent = benchTable(benchJson);
    $("bench-copy").disabled = false;
  } catch (e) {
    $("bench-table").textContent = `Error: ${e.message || e}`;
  } finally {
    $("bench-run").disabled = false;
  }
  return benchJson;
}

function wireBench() {
  $("bench-run").addEventListener("click", runBench);
  $("bench-copy").addEventListener("click", () => navigator.clipboard.writeText(benchJson));
}

// ---- test hook (scripts/test_web.sh) ------------------------------------------------------

async function post(name, body) {
  await fetch(`/__test/result/${name}`, { method: "POST", body });
}

// ?test=MANIFEST: fetches the files the manifest lists (same origin), translates them as if
// dropped, hands the NIfTI and the report to the test server, and with &bench=BATCH runs the
// bench too. The last post releases the page's load event.
async function runTest(manifestUrl) {
  try {
    const manifest = await (await fetch(manifestUrl)).json();
    const base = new URL(manifestUrl, location.href);
    const files = [];
    for (const name of manifest.files) {
      const resp = await fetch(new URL(name, base));
      if (!resp.ok) throw new Error(`${name}: HTTP ${resp.status}`);
      files.push({ name, bytes: new Uint8Array(await resp.arrayBuffer()) });
    }
    const { r, report } = await translate(files);
    await post("sct.nii.gz", r.nifti);
    await post("dicom.zip", r.dicom_zip);
    if (params.has("bench")) {
      $("bench-batch").value = params.get("bench");
      const t0 = performance.now();
      const json = await runBench();
      report.bench_seconds = (performance.now() - t0) / 1000;
      if (json) await post("bench.json", json);
      await post("bench.txt", $("bench-table").textContent);
    }
    await post("page.json", JSON.stringify(report, null, 1));
  } catch (e) {
    await post("error.txt", String(e.message || e));
  }
}

// A panic in the engine ends its promise without settling it: report it in test runs too.
if (params.has("test")) {
  addEventListener("error", (e) => post("error.txt", String(e.message || e)));
  addEventListener("unhandledrejection", (e) => post("error.txt", String(e.reason)));
}

main().catch(async (e) => {
  setStatus(`Error: ${e.message || e}`, true);
  if (params.has("test")) await post("error.txt", String(e.message || e));
});
