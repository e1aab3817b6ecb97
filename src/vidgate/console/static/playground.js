// Playground: make a video, watch it render (paced by the server's poll hint), play it, remix it.

import { ApiError, pollDelay, request } from "./api.js";
import { $, STATUS_TEXT, armConfirm, statusOf } from "./util.js";

const SIZES = {
  portrait: { small: "720x1280", large: "1080x1920" },
  landscape: { small: "1280x720", large: "1920x1080" },
};
// The server's `param` -> the form field it is shown next to.
const FIELDS = ["prompt", "model", "orientation", "size", "duration", "watermark", "image"];
const INPUT_OF = {
  prompt: "f-prompt", model: "f-model", orientation: "f-orientation", size: "f-size",
  duration: "f-duration", watermark: "f-watermark", image: "f-file",
};

export function fieldOf(param) {
  if (!param) return null;
  if (param === "seconds" || param === "duration") return "duration";
  if (param.startsWith("input_reference") || param.startsWith("images")) return "image";
  const base = param.split(/[.[]/)[0];
  return FIELDS.includes(base) ? base : null;
}

let file = null;
let previewUrl = null;
let current = null; // the OpenAI-dialect Video being shown
let watchToken = 0;
let onModelSeen = () => {};

function clearErrors() {
  for (const name of FIELDS) {
    $(`err-${name}`).textContent = "";
    $(INPUT_OF[name]).removeAttribute("aria-invalid");
  }
  $("f-url").removeAttribute("aria-invalid");
  $("err-form").textContent = "";
}

function showError(err) {
  const field = err instanceof ApiError ? fieldOf(err.param) : null;
  if (field) {
    $(`err-${field}`).textContent = err.message;
    const input = field === "image" && !file ? $("f-url") : $(INPUT_OF[field]);
    input.setAttribute("aria-invalid", "true");
    input.focus();
  } else {
    $("err-form").textContent = err.message;
  }
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

async function submit(event) {
  event.preventDefault();
  clearErrors();
  const prompt = $("f-prompt").value;
  if (!prompt.trim()) {
    showError(new ApiError(400, "missing_required_parameter", "prompt", "Write a prompt first."));
    return;
  }
  const model = $("f-model").value.trim() || "sora-2";
  const size = SIZES[$("f-orientation").value][$("f-size").value];
  const seconds = $("f-duration").value;
  const watermark = $("f-watermark").checked;
  const imageUrl = $("f-url").value.trim();
  const button = $("create-submit");
  button.disabled = true;
  try {
    let answer;
    if (file) {
      const form = new FormData();
      form.append("prompt", prompt);
      form.append("model", model);
      form.append("seconds", seconds);
      form.append("size", size);
      form.append("watermark", String(watermark));
      form.append("input_reference", file, file.name || "image");
      answer = await request("POST", "/v1/videos", { form });
    } else {
      const json = { prompt, model, seconds, size, watermark };
      if (imageUrl) json.input_reference = { image_url: imageUrl };
      answer = await request("POST", "/v1/videos", { json });
    }
    onModelSeen(model);
    watch(answer.data);
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
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

async function showMedia(video, token) {
  const { data } = await request("GET", "/v1/video/query", { query: { id: video.id } });
  if (token !== watchToken || !data.video_url) return;
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

function setupScrub(data) {
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

export function initPlayground({ modelSeen }) {
  onModelSeen = modelSeen;
  $("create-form").addEventListener("submit", submit);
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
  current = null;
  setFile(null);
  resetStage();
}
