// Small DOM helpers. Text is always set as text (never parsed as HTML).

export const $ = (id) => document.getElementById(id);

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
}

export function age(unixSeconds) {
  if (!unixSeconds) return "";
  const s = Math.max(0, Math.round(Date.now() / 1000 - unixSeconds));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function when(unixSeconds) {
  return unixSeconds ? new Date(unixSeconds * 1000).toLocaleString() : "";
}

/** Micro-credits as credits ("unlimited" for null). */
export function credits(micro) {
  if (micro === null || micro === undefined) return "unlimited";
  return (micro / 1_000_000).toLocaleString(undefined, { maximumFractionDigits: 6 });
}

export function toMicro(text) {
  const value = Number(text);
  return Math.round(value * 1_000_000);
}

/** Make `button` ask once more before acting: the first press arms it, the second runs `action`. */
export function armConfirm(button, confirmLabel, action) {
  const label = button.textContent;
  let timer = null;
  const disarm = () => {
    clearTimeout(timer);
    button.dataset.armed = "";
    button.textContent = label;
  };
  button.addEventListener("click", async () => {
    if (button.dataset.armed !== "1") {
      button.dataset.armed = "1";
      button.textContent = confirmLabel;
      timer = setTimeout(disarm, 5000);
      return;
    }
    disarm();
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

export function confirmButton(label, confirmLabel, action, className = "danger") {
  return armConfirm(el("button", { type: "button", class: className, text: label }), confirmLabel, action);
}

/** The status word a user reads, from an OpenAI-dialect Video (a cancelled task is `failed` + code). */
export function statusOf(video) {
  if (video.status === "failed" && video.error && video.error.code === "cancelled") return "cancelled";
  return video.status;
}

export const STATUS_TEXT = {
  queued: "queued",
  in_progress: "in progress",
  completed: "completed",
  failed: "failed",
  cancelled: "cancelled",
  pending: "pending",
  processing: "processing",
};
