// History: the key's videos, newest first, in cursor pages, with a status filter; a failed one's reason
// and a delivered one's warnings in its row.

import { request } from "./api.js";
import { $, STATUS_TEXT, age, clear, confirmButton, el, statusOf } from "./util.js";

const PAGE = 10;
let cursors = [null]; // `after` of each page shown so far
let nextCursor = null;
let thumbUrls = [];
let callbacks = { open: () => {} };

function releaseThumbs() {
  for (const u of thumbUrls) URL.revokeObjectURL(u);
  thumbUrls = [];
}

/** One screen: up to PAGE videos in `status` (the server filters; "" = any), starting after `after`. */
async function fetchScreen(after, status) {
  const { data } = await request("GET", "/v1/videos", {
    query: { limit: PAGE, after: after ?? undefined, order: "desc", status: status || undefined },
  });
  return { videos: data.data, next: data.has_more ? data.last_id : null };
}

async function thumbnail(video, img) {
  try {
    const { data } = await request("GET", `/v1/videos/${encodeURIComponent(video.id)}/content`, {
      query: { variant: "thumbnail" },
      raw: true,
    });
    const u = URL.createObjectURL(data);
    thumbUrls.push(u);
    img.src = u;
  } catch {
    img.replaceWith(el("div", { class: "thumb placeholder", "aria-hidden": "true" }));
  }
}

/** A delivered video's `detail.warnings` (what it lacks: glyphs its card could not draw, another size
 * than asked), under its row: the list gives no detail, the unified query does. */
async function warnings(video, list) {
  try {
    const { data } = await request("GET", "/v1/video/query", { query: { id: video.id } });
    const found = (data.detail && data.detail.warnings) || [];
    for (const text of found) list.append(el("li", { text }));
    list.hidden = found.length === 0;
  } catch {
    // Not worth an error on the page: the row says the rest, and Open shows the video.
  }
}

function row(video) {
  const status = statusOf(video);
  const ready = video.status === "completed";
  const thumb = ready
    ? el("img", { class: "thumb", alt: "", width: 96, height: 54, loading: "lazy" })
    : el("div", { class: "thumb placeholder", "aria-hidden": "true" });
  if (ready) thumbnail(video, thumb);
  // Why it failed, without opening it (a cancelled one's badge says it all).
  const reason = status === "failed" && video.error
    ? el("p", { class: "reason", text: `${video.error.code}: ${video.error.message}` })
    : null;
  const warned = ready ? el("ul", { class: "warnings", "aria-label": "Warnings", hidden: true }) : null;
  if (ready) warnings(video, warned);
  const item = el(
    "li",
    { class: "history-item", dataset: { id: video.id, status } },
    thumb,
    el(
      "div",
      { class: "history-main" },
      el("p", { class: "prompt", text: video.prompt || "(no prompt)" }),
      el(
        "p",
        { class: "meta" },
        el("span", { class: "badge", dataset: { status }, text: STATUS_TEXT[status] || status }),
        el("span", { text: video.model }),
        el("span", { text: video.size }),
        el("span", { text: `${video.seconds} s` }),
        el("time", {
          datetime: new Date(video.created_at * 1000).toISOString(),
          title: new Date(video.created_at * 1000).toLocaleString(),
          text: age(video.created_at),
        }),
      ),
      reason,
      warned,
    ),
    el(
      "div",
      { class: "history-actions" },
      el("button", { type: "button", text: "Open", "aria-label": `Open ${video.id}`, onclick: () => callbacks.open(video.id) }),
      confirmButton("Delete", "Really delete?", async () => {
        try {
          await request("DELETE", `/v1/videos/${encodeURIComponent(video.id)}`);
          item.remove();
          if (!$("history-list").children.length) $("history-empty").hidden = false;
        } catch (err) {
          $("history-error").textContent = err.message;
        }
      }),
    ),
  );
  return item;
}

async function load(pageIndex) {
  const list = $("history-list");
  $("history-error").textContent = "";
  try {
    const { videos, next } = await fetchScreen(cursors[pageIndex], $("history-status").value);
    releaseThumbs();
    clear(list);
    cursors = cursors.slice(0, pageIndex + 1);
    nextCursor = next;
    for (const video of videos) list.append(row(video));
    $("history-empty").hidden = videos.length > 0;
    $("history-next").disabled = !next;
    $("history-first").disabled = pageIndex === 0;
  } catch (err) {
    $("history-error").textContent = err.message;
  }
}

export function initHistory(cb) {
  callbacks = cb;
  $("history-status").addEventListener("change", () => {
    cursors = [null];
    load(0);
  });
  $("history-refresh").addEventListener("click", () => load(cursors.length - 1));
  $("history-first").addEventListener("click", () => {
    cursors = [null];
    load(0);
  });
  $("history-next").addEventListener("click", () => {
    if (!nextCursor) return;
    cursors.push(nextCursor);
    load(cursors.length - 1);
  });
}

export function showHistory() {
  cursors = [null];
  return load(0);
}
