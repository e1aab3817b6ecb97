// The model catalog (`GET /v1/models`): the models the signed-in key may use, what each can do and
// what a clip costs. Pure helpers over its answer; the playground builds its form from them.

import { request } from "./api.js";

// What the console offers when the catalog cannot be read (an older server, a network failure):
// the form as it was before the catalog existed, with no optional field.
export const FALLBACK_MODEL = {
  id: "sora-2",
  owned_by: null,
  capabilities: {
    durations: [4, 8, 10, 12, 15, 16, 20, 25],
    resolutions: ["720p", "1080p"],
    aspect_ratios: ["16:9", "9:16"],
    sizes: ["720x1280", "1280x720", "1080x1920", "1920x1080"],
    audio: "none",
    audio_default: false,
    images: { first_frame: true, last_frame: false, reference_images: 0, max: 1 },
    negative_prompt: false,
    seed: false,
    enhance_prompt: false,
  },
  pricing: null,
};

/** The key's models, ordered by id. */
export async function loadCatalog() {
  const { data } = await request("GET", "/v1/models");
  return (data && Array.isArray(data.data) ? data.data : []).filter((m) => m && typeof m.id === "string");
}

/** The `WxH` a resolution word and an aspect ratio name (the server's `canonical_size`): the short side
 * is the resolution's number, the long side the nearest even number for the ratio. */
export function canonicalSize(resolution, ratio) {
  const short = Number.parseInt(resolution, 10);
  const [a, b] = ratio.split(":").map(Number);
  const long = Math.round((short * Math.max(a, b)) / Math.min(a, b) / 2) * 2;
  return a > b ? `${long}x${short}` : `${short}x${long}`;
}

/** The aspect ratios `model` makes at `resolution` (every one of them when it names no resolution). */
export function ratiosAt(model, resolution) {
  const caps = model.capabilities;
  if (!resolution) return caps.aspect_ratios;
  return caps.aspect_ratios.filter((r) => caps.sizes.includes(canonicalSize(resolution, r)));
}

/** Whether a clip has sound, given the model and the form's toggle. */
export function makesSound(model, toggle) {
  const audio = model.capabilities.audio;
  if (audio === "always") return true;
  if (audio === "optional") return Boolean(toggle);
  return false;
}

/** Credits one clip costs (decimal text), "free", or null where the catalog lists no such clip. */
export function clipPrice(model, shape, sound, seconds) {
  if (!model.pricing) return "free";
  const bySound = model.pricing.per_clip[shape];
  const bySeconds = bySound && bySound[sound ? "with_audio" : "silent"];
  const price = bySeconds && bySeconds[String(seconds)];
  return price === undefined ? null : price;
}

/** `first frame, last frame, 4 reference images`: which images the model takes. */
export function imagesText(model) {
  const images = model.capabilities.images;
  const kinds = [];
  if (images.first_frame) kinds.push("first frame");
  if (images.last_frame) kinds.push("last frame");
  if (images.reference_images > 0) kinds.push(`${images.reference_images} reference images`);
  return kinds.length ? kinds.join(", ") : "none";
}

/** The cheapest and the dearest clip: `0.4–2 credits`, `free`, or "" when nothing is listed. */
export function priceRange(model) {
  if (!model.pricing) return "free";
  const prices = Object.values(model.pricing.per_clip)
    .flatMap((bySound) => Object.values(bySound))
    .flatMap((bySeconds) => Object.values(bySeconds))
    .map(Number)
    .filter(Number.isFinite);
  if (!prices.length) return "";
  const low = Math.min(...prices);
  const high = Math.max(...prices);
  return `${low === high ? low : `${low}–${high}`} credits`;
}
