// Playground: make a video, watch it render (paced by the server's poll hint), play it, remix it.
// The form is built from the key's model catalog (`GET /v1/models`): it offers only what the chosen
// model can do, and sends only the fields it offers.

import { ApiError, pollDelay, request } from "./api.js";
import {
  FALLBACK_MODEL, clipPrice, imagesText, loadCatalog, makesSound, priceRange, ratiosAt,
} from "./catalog.js";
import { $, STATUS_TEXT, armConfirm, clear, el, statusOf } from "./util.js";

// The server's `param` -> the form field it is shown next to.
const FIELDS = [
  "prompt", "model", "image", "last_frame", "duration", "resolution", "aspect_ratio", "size", "seed",
  "enhance_prompt", "negative_prompt", "audio", "watermark",
];
const INPUT_OF = {
  prompt: "f-prompt", model: "f-model", image: "f-file", last_frame: "f-last-url", duration: "f-duration",
  resolution: "f-resolution", aspect_ratio: "f-aspect-ratio", size: "f-size", seed: "f-seed",
  enhance_prompt: "f-enhance-prompt", negative_prompt: "f-negative-prompt", audio: "f-audio",
  watermark: "f-watermark",
};
// The box around each optional field (hidden when the model cannot take it).
const BOX_OF = {
  image: "image-field", last_frame: "last-frame-field", resolution: "resolution-field",
  aspect_ratio: "aspect_ratio-field", size: "size-field", seed: "seed-field",
  enhance_prompt: "enhance_prompt-field", negative_prompt: "negative_prompt-field", audio: "audio-toggle",
};

export function fieldOf(param) {
  if (!param) return null;
  if (param === "seconds" || param === "duration") return "duration";
  if (param.startsWith("input_reference") || param.startsWith("images")) return "image";
  if (param === "generate_audio" || param === "audio") return "audio";
  if (param === "orientation") return "aspect_ratio";
  if (param === "size" && $("size-field").hidden) return "resolution";
  const base = param.split(/[.[]/)[0];
  return FIELDS.includes(base) ? base : null;
}

let file = null;
let lastFile = null;
let previewUrl = null;
let current = null; // the OpenAI-dialect Video being shown
let watchToken = 0;
let models = new Map(); // id -> the catalog's entry
let catalogToken = 0;

function chosenModel() {
  return models.get($("f-model").value) || FALLBACK_MODEL;
}

function clearErrors() {
  for (const name of FIELDS) {
    $(`err-${name}`).textContent = "";
    $(INPUT_OF[name]).removeAttribute("aria-invalid");
  }
  $("f-url").removeAttribute("aria-invalid");
  $("f-last-file").removeAttribute("aria-invalid");
  $("err-form").textContent = "";
}

function showError(err) {
  let field = err instanceof ApiError ? fieldOf(err.param) : null;
  if (field && BOX_OF[field] && $(BOX_OF[field]).hidden) field = null; // not on the form for this model
  if (field) {
    $(`err-${field}`).textContent = err.message;
    let input = $(INPUT_OF[field]);
    if (field === "image" && !file) input = $("f-url");
    if (field === "last_frame" && lastFile) input = $("f-last-file");
    input.setAttribute("aria-invalid", "true");
    input.focus();
  } else {
    $("err-form").textContent = err.message;
  }
}

/** Replace `select`'s options with `values` (labelled by `label`), keeping its choice when it stays
 * offered, else `preferred` when offered, else the first. */
function fillSelect(select, values, label = String, preferred = null) {
  const kept = select.value;
  clear(select);
  for (const value of values) select.append(el("option", { value: String(value), text: label(value) }));
  const offered = values.map(String);
  if (offered.includes(kept)) select.value = kept;
  else if (preferred !== null && offered.includes(String(preferred))) select.value = String(preferred);
}

/** The key's models into the picker (called at sign-in): only those `GET /v1/models` lists. */
export async function loadModels() {
  const token = ++catalogToken;
  const picker = $("f-model");
  $("err-model").textContent = "";
  let listed;
  try {
    listed = await loadCatalog();
  } catch (err) {
    if (token !== catalogToken) return;
    showFallback();
    $("err-model").textContent = `The model list could not be loaded: ${err.message}`;
    return;
  }
  if (token !== catalogToken) return;
  models = new Map(listed.map((m) => [m.id, m]));
  fillSelect(picker, listed.map((m) => m.id), String, "sora-2");
  picker.disabled = listed.length === 0;
  $("create-submit").disabled = listed.length === 0;
  if (!listed.length) $("err-model").textContent = "This key may not use any model.";
  applyModel();
}

/** The form without a catalog (before sign-in, or when it could not be read). */
function showFallback() {
  models = new Map();
  fillSelect($("f-model"), [FALLBACK_MODEL.id]);
  $("f-model").disabled = false;
  $("create-submit").disabled = false;
  applyModel();
}

/** Show the form the chosen model can fill: its durations, resolutions and ratios (or sizes), sound,
 * images, and the optional fields it honours. */
function applyModel() {
  const model = chosenModel();
  const caps = model.capabilities;
  const known = models.has(model.id);
  const price = priceRange(model);
  $("model-info").textContent = known
    ? [
      model.owned_by ? `by ${model.owned_by}` : null,
      `images: ${imagesText(model)}`,
      price ? `price: ${price === "free" ? "free" : `${price} a clip`}` : null,
    ].filter(Boolean).join(" · ")
    : "";
  fillSelect($("f-duration"), caps.durations, (d) => `${d} s`, caps.durations[0]);

  const named = caps.resolutions.length > 0; // sizes that resolution words name, else sizes only
  $("resolution-field").hidden = !named;
  $("aspect_ratio-field").hidden = !named;
  $("size-field").hidden = named;
  if (named) {
    fillSelect($("f-resolution"), caps.resolutions, String, caps.resolutions.includes("720p") ? "720p" : null);
    applyResolution();
  } else {
    fillSelect($("f-size"), caps.sizes);
  }

  const images = caps.images;
  $("image-field").hidden = images.max < 1;
  if (images.max < 1) {
    setFile(null);
    $("f-url").value = "";
  }
  $("last-frame-field").hidden = !images.last_frame;
  if (!images.last_frame) clearLastFrame();
  $("seed-field").hidden = !caps.seed;
  $("negative_prompt-field").hidden = !caps.negative_prompt;
  $("enhance_prompt-field").hidden = !caps.enhance_prompt;

  const optional = caps.audio === "optional";
  $("audio-toggle").hidden = !optional;
  $("f-audio").checked = optional && Boolean(caps.audio_default);
  const fixed = $("audio-fixed");
  fixed.hidden = optional;
  fixed.textContent = caps.audio === "always"
    ? "Sound: always (this model makes every video with sound)."
    : optional ? "" : "Sound: none (this model makes silent videos).";
  showPrice();
}

/** The aspect ratios the model makes at the chosen resolution. */
function applyResolution() {
  const model = chosenModel();
  fillSelect($("f-aspect-ratio"), ratiosAt(model, $("f-resolution").value), String, "16:9");
  showPrice();
}

/** What the video as chosen will cost (the server's hold), from the catalog's prices. */
function showPrice() {
  const model = chosenModel();
  const line = $("price");
  if (!models.has(model.id)) {
    line.textContent = "";
    return;
  }
  const named = !$("resolution-field").hidden;
  const shape = named ? $("f-resolution").value : $("f-size").value;
  const price = clipPrice(model, shape, makesSound(model, $("f-audio").checked), $("f-duration").value);
  line.textContent = price === "free" ? "This video: free." : price === null ? "" : `This video: ${price} credits.`;
}

function clearLastFrame() {
  lastFile = null;
  $("f-last-file").value = "";
  $("f-last-url").value = "";
}

function readDataUri(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.addEventListener("load", () => resolve(String(reader.result)));
    reader.addEventListener("error", () => reject(new ApiError(0, "read_failed", null, "The file could not be read.")));
    reader.readAsDataURL(blob);
  });
}

function setFile(next) {
  file = next;
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = null;
  const img = $("image-preview");
  if (file) {
    previewUrl = URL.createObjectURL(file);
    img.src = previewUrl;
    img.alt = `Chosen image: ${file.name}`;
    $("f-url").value = "";
  } else {
    img.removeAttribute("src");
    $("f-file").value = "";
  }
  img.hidden = !file;
  $("image-clear").hidden = !file;
  $("drop-hint").textContent = file ? file.name : "Drop an image here, or";
}

/** The create's fields, as the chosen model takes them: only the fields the form shows are sent. */
function createFields(model) {
  const caps = model.capabilities;
  const fields = {
    prompt: $("f-prompt").value,
    model: $("f-model").value || model.id,
    seconds: $("f-duration").value,
    watermark: $("f-watermark").checked,
  };
  if (!$("resolution-field").hidden) {
    fields.resolution = $("f-resolution").value;
    fields.aspect_ratio = $("f-aspect-ratio").value;
  } else if ($("f-size").value) {
    fields.size = $("f-size").value;
  }
  if (caps.audio === "optional") fields.generate_audio = $("f-audio").checked;
  if (caps.seed && $("f-seed").value.trim() !== "") fields.seed = Number($("f-seed").value);
  if (caps.negative_prompt && $("f-negative-prompt").value.trim()) {
    fields.negative_prompt = $("f-negative-prompt").value;
  }
  if (caps.enhance_prompt && $("f-enhance-prompt").value) {
    fields.enhance_prompt = $("f-enhance-prompt").value === "true";
  }
  return fields;
}

async function submit(event) {
  event.preventDefault();
  clearErrors();
  const prompt = $("f-prompt").value;
  if (!prompt.trim()) {
    showError(new ApiError(400, "missing_required_parameter", "prompt", "Write a prompt first."));
    return;
  }
  const seed = $("f-seed").value.trim();
  if (!$("seed-field").hidden && seed && !/^\d{1,10}$/.test(seed)) {
    showError(new ApiError(400, "invalid_type", "seed", "The seed is a whole number, 0 or more."));
    return;
  }
  const model = chosenModel();
  const fields = createFields(model);
  const imageUrl = $("f-url").value.trim();
  const lastUrl = $("f-last-url").value.trim();
  const button = $("create-submit");
  button.disabled = true;
  try {
    let answer;
    const withLast = !$("last-frame-field").hidden;
    if (file && !(withLast && lastFile)) {
      // One image file goes up as a multipart upload (the server's upload limit, not its JSON one).
      const form = new FormData();
      for (const [name, value] of Object.entries(fields)) form.append(name, String(value));
      if (withLast && lastUrl) form.append("last_frame", lastUrl);
      form.append("input_reference", file, file.name || "image");
      answer = await request("POST", "/v1/videos", { form });
    } else {
      // A last frame from a file travels inline (a data: URI), so the whole create is JSON, the first
      // image inline too: both must fit in the server's JSON body limit.
      const json = { ...fields };
      if (file) json.input_reference = { image_url: await readDataUri(file) };
      else if (imageUrl) json.input_reference = { image_url: imageUrl };
      if (withLast && lastFile) json.last_frame = await readDataUri(lastFile);
      else if (withLast && lastUrl) json.last_frame = lastUrl;
      answer = await request("POST", "/v1/videos", { json });
    }
    watch(answer.data);
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = $("f-model").disabled; // a key that may use no model has nothing to make
  }
}

function render(video) {
  current = video;
  const status = statusOf(video);
  const badge = $("task-status");
  if (badge.dataset.status !== status) {
    $("task-live").textContent = status === "failed" || status === "cancelled"
      ? `Video ${STATUS_TEXT[status]}: ${video.error ? video.error.message : ""}`
      : `Video ${STATUS_TEXT[status]}.`;
  }
  badge.dataset.status = status;
  badge.textContent = STATUS_TEXT[status] || status;
  const progress = status === "completed" ? 100 : video.progress || 0;
  $("task-progress").value = progress;
  $("task-percent").textContent = `${progress}%`;
  $("task-title").textContent = video.prompt ? video.prompt : "Current video";
  $("task-title").title = video.id;
  const running = status === "queued" || status === "in_progress";
  $("cancel").hidden = !running;
  $("delete").hidden = false;
  if (status !== "completed") $("remix-form").hidden = true; // shown with the media (showMedia)
}

function resetStage() {
  $("task-reason").hidden = true;
  showWarnings([]);
  const player = $("player");
  player.pause();
  player.removeAttribute("src");
  player.removeAttribute("poster");
  player.load();
  player.hidden = true;
  $("stage-empty").hidden = false;
  $("download").hidden = true;
  $("previews").hidden = true;
  $("remix-form").hidden = true;
}

/** Show `video` and follow it until it ends. */
export async function watch(video) {
  const token = ++watchToken;
  resetStage();
  render(video);
  let latest = video;
  let headers = null;
  while (token === watchToken && ["queued", "in_progress"].includes(latest.status)) {
    await new Promise((resolve) => setTimeout(resolve, pollDelay(headers)));
    if (token !== watchToken) return;
    try {
      const answer = await request("GET", `/v1/videos/${encodeURIComponent(latest.id)}`);
      latest = answer.data;
      headers = answer.headers;
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        $("task-live").textContent = "This video no longer exists.";
        return;
      }
      headers = null; // a transient failure: try again at the fallback pace
      continue;
    }
    if (token === watchToken) render(latest);
    if (token === watchToken && ["queued", "in_progress"].includes(latest.status)) await showReason(latest, token);
  }
  $("task-reason").hidden = true;
  if (token === watchToken && latest.status === "completed") await showMedia(latest, token);
}

/** Why a video is still waiting (retries, a busy channel, an unknown outcome): `detail.last_error`. */
async function showReason(video, token) {
  let detail = null;
  try {
    detail = (await request("GET", "/v1/video/query", { query: { id: video.id } })).data.detail;
  } catch {
    return; // the next poll tries again
  }
  if (token !== watchToken) return;
  const reason = $("task-reason");
  const last = detail && detail.last_error;
  reason.textContent = last ? `Still trying: ${last.message}` : "";
  reason.hidden = !last;
}

/** What a delivered video lacks (`detail.warnings`: glyphs the title card could not draw, a size or a
 * duration other than asked), in a card under the video's (the video's own card keeps its size). */
function showWarnings(found) {
  const list = $("task-warnings-list");
  clear(list);
  for (const text of found) list.append(el("li", { text }));
  $("task-warnings").hidden = found.length === 0;
}

async function showMedia(video, token) {
  const { data } = await request("GET", "/v1/video/query", { query: { id: video.id } });
  if (token !== watchToken) return;
  showWarnings((data.detail && data.detail.warnings) || []);
  if (!data.video_url) return;
  const player = $("player");
  if (data.thumbnail_url) player.poster = data.thumbnail_url;
  player.src = data.video_url;
  player.hidden = false;
  $("stage-empty").hidden = true;
  const download = $("download");
  download.href = data.video_url;
  download.hidden = false;
  if (data.thumbnail_url || data.spritesheet_url) {
    $("previews").hidden = false;
    $("thumbnail").src = data.thumbnail_url || "";
    setupScrub(data);
  }
  $("remix-form").hidden = false;
}

function setupScrub(query) {
  // The frames' real size (`detail.video`, when the channel's video is not the size asked for): the
  // spritesheet's tiles are those frames.
  const real = query.detail && query.detail.video;
  const data = real ? { ...query, width: real.width, height: real.height } : query;
  const scrub = $("scrub");
  const range = $("scrub-range");
  scrub.style.aspectRatio = `${data.width} / ${data.height}`;
  $("thumbnail").style.aspectRatio = `${data.width} / ${data.height}`;
  if (!data.spritesheet_url) return;
  const sheet = new Image();
  sheet.addEventListener("load", () => {
    // Tiles are the frame scaled so its long side is at most 256 px (media/previews.py).
    const scale = Math.min(1, 256 / Math.max(data.width, data.height));
    const columns = Math.max(1, Math.round(sheet.naturalWidth / (data.width * scale)));
    const rows = Math.max(1, Math.round(sheet.naturalHeight / (data.height * scale)));
    const tiles = columns * rows;
    scrub.style.backgroundImage = `url("${data.spritesheet_url}")`;
    scrub.style.backgroundSize = `${columns * 100}% ${rows * 100}%`;
    scrub.dataset.tiles = String(tiles);
    range.max = String(tiles - 1);
    const show = (k) => {
      const col = k % columns;
      const row = Math.floor(k / columns);
      scrub.style.backgroundPosition =
        `${columns > 1 ? (col / (columns - 1)) * 100 : 0}% ${rows > 1 ? (row / (rows - 1)) * 100 : 0}%`;
      scrub.dataset.frame = String(k);
      range.value = String(k);
      range.setAttribute("aria-valuetext", `frame ${k + 1} of ${tiles}`);
    };
    const at = (event) => {
      const box = scrub.getBoundingClientRect();
      return Math.min(tiles - 1, Math.max(0, Math.floor(((event.clientX - box.left) / box.width) * tiles)));
    };
    const seek = (k) => {
      const player = $("player");
      if (Number.isFinite(player.duration)) player.currentTime = ((k + 0.5) * player.duration) / tiles;
    };
    scrub.onpointermove = (event) => show(at(event));
    scrub.onclick = (event) => seek(at(event));
    range.oninput = () => show(Number(range.value));
    range.onchange = () => seek(Number(range.value));
    show(0);
  });
  sheet.src = data.spritesheet_url;
}

export function initPlayground() {
  showFallback(); // until the key's catalog arrives (loadModels, at sign-in)
  $("create-form").addEventListener("submit", submit);
  $("f-model").addEventListener("change", applyModel);
  $("f-resolution").addEventListener("change", applyResolution);
  for (const id of ["f-aspect-ratio", "f-size", "f-duration", "f-audio"]) $(id).addEventListener("change", showPrice);
  $("f-last-file").addEventListener("change", (event) => {
    lastFile = event.target.files[0] || null;
    if (lastFile) $("f-last-url").value = "";
  });
  $("f-last-url").addEventListener("input", () => {
    if ($("f-last-url").value && lastFile) {
      lastFile = null;
      $("f-last-file").value = "";
    }
  });
  $("f-file").addEventListener("change", (event) => setFile(event.target.files[0] || null));
  $("image-clear").addEventListener("click", () => setFile(null));
  $("f-url").addEventListener("input", () => {
    if ($("f-url").value && file) setFile(null);
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const dropped = [...(event.dataTransfer?.files || [])].find((f) => f.type.startsWith("image/"));
    if (dropped) setFile(dropped);
    else $("err-image").textContent = "Drop an image file (PNG, JPEG, WebP, …).";
  });
  $("cancel").addEventListener("click", async () => {
    if (!current) return;
    try {
      const { data } = await request("POST", `/v1/videos/${encodeURIComponent(current.id)}/cancel`);
      render(data);
    } catch (err) {
      $("task-live").textContent = err.message;
    }
  });
  armConfirm($("delete"), "Really delete?", async () => {
    if (!current) return;
    try {
      await request("DELETE", `/v1/videos/${encodeURIComponent(current.id)}`);
      watchToken++;
      current = null;
      resetStage();
      const badge = $("task-status");
      badge.dataset.status = "none";
      badge.textContent = "deleted";
      $("task-title").textContent = "Current video";
      $("task-progress").value = 0;
      $("task-percent").textContent = "0%";
      $("task-live").textContent = "Video deleted.";
      $("cancel").hidden = true;
      $("delete").hidden = true;
      $("remix-form").hidden = true;
    } catch (err) {
      $("task-live").textContent = err.message;
    }
  });
  $("remix-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("err-remix").textContent = "";
    const prompt = $("remix-prompt").value;
    if (!current || !prompt.trim()) {
      $("err-remix").textContent = "Write the new prompt first.";
      return;
    }
    try {
      const { data } = await request("POST", `/v1/videos/${encodeURIComponent(current.id)}/remix`, {
        json: { prompt },
      });
      $("remix-prompt").value = "";
      watch(data);
    } catch (err) {
      $("err-remix").textContent = err.message;
    }
  });
}

/** Open an existing video (from the history) in the playground. */
export async function openVideo(id) {
  const { data } = await request("GET", `/v1/videos/${encodeURIComponent(id)}`);
  watch(data);
}

export function resetPlayground() {
  watchToken++;
  catalogToken++;
  current = null;
  setFile(null);
  clearLastFrame();
  showFallback();
  $("err-model").textContent = "";
  resetStage();
}
