// The operator's pages (admin keys only): keys, usage, every key's tasks, channel status.

import { ApiError, request } from "./api.js";
import { colour, stackedBars } from "./chart.js";
import { $, STATUS_TEXT, clear, confirmButton, credits, el, toMicro, when } from "./util.js";

// Keys ----------------------------------------------------------------------------------------------

const KEY_FIELDS = { name: "k-name", balance: "k-balance", requests_per_minute: "k-rpm", creates_per_minute: "k-cpm", max_active_tasks: "k-active" };
const KEY_ERRORS = { name: "err-k-name", balance: "err-k-balance", requests_per_minute: "err-k-rpm", creates_per_minute: "err-k-cpm", max_active_tasks: "err-k-active" };
let keysAfter = null;

function limitValue(text) {
  return text.trim() === "" ? null : Number(text);
}

function limitsText(key) {
  const show = (v) => (v === null ? "default" : v === 0 ? "∞" : String(v));
  return `${show(key.requests_per_minute)} / ${show(key.creates_per_minute)} / ${show(key.max_active_tasks)}`;
}

/** A cell of the keys table; `label` names it where a phone shows the row as a card (style.css). */
function keyCell(label, props, ...children) {
  return el("td", { ...props, role: "cell", dataset: { label } }, ...children);
}

function keyRow(key) {
  const tr = el("tr", { role: "row", dataset: { keyId: key.id } });
  const state = key.revoked_at ? "revoked" : key.admin ? "admin" : "active";
  const actions = el("div", { class: "row-actions" });
  const cells = [
    keyCell("Name", {}, el("strong", { text: key.name }), el("br"), el("code", { class: "small", text: key.id })),
    keyCell("Hint", {}, el("code", { text: key.hint })),
    keyCell("Balance", { text: key.balance === null ? "unlimited" : `${credits(key.available)} of ${credits(key.balance)}` }),
    keyCell("Limits (rpm / cpm / active)", { text: limitsText(key) }),
    keyCell("Created", { text: when(key.created_at) }),
    keyCell("State", {}, el("span", { class: "badge", dataset: { status: state }, text: state })),
    keyCell("Actions", {}, actions),
  ];
  tr.append(...cells);
  if (!key.revoked_at) {
    actions.append(
      confirmButton("Revoke", "Really revoke?", async () => {
        try {
          const { data } = await request("POST", `/v1/admin/keys/${key.id}/revoke`);
          tr.replaceWith(keyRow(data));
        } catch (err) {
          $("keys-error").textContent = err.message;
        }
      }),
    );
    if (key.balance !== null) actions.append(inlineForm(key, tr, "Top up", [["amount", "Credits to add", ""]], async (values) => {
      const { data } = await request("POST", `/v1/admin/keys/${key.id}/topup`, { json: { amount: toMicro(values.amount) } });
      return data;
    }));
    actions.append(inlineForm(key, tr, "Limits", [
      ["requests_per_minute", "Requests per minute", key.requests_per_minute],
      ["creates_per_minute", "Creates per minute", key.creates_per_minute],
      ["max_active_tasks", "Max active tasks", key.max_active_tasks],
    ], async (values) => {
      const body = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, limitValue(v)]));
      const { data } = await request("PATCH", `/v1/admin/keys/${key.id}`, { json: body });
      return data;
    }));
  }
  return tr;
}

/** A button that opens a small form under the row; `submit(values)` returns the changed key. */
function inlineForm(key, tr, label, fields, submit) {
  const button = el("button", { type: "button", text: label, "aria-expanded": "false" });
  button.addEventListener("click", () => {
    const open = tr.nextElementSibling && tr.nextElementSibling.dataset.formFor === `${key.id}:${label}`;
    document.querySelectorAll(`tr[data-form-for^="${key.id}:"]`).forEach((n) => n.remove());
    if (open) {
      button.setAttribute("aria-expanded", "false");
      return;
    }
    button.setAttribute("aria-expanded", "true");
    const error = el("p", { class: "field-error", role: "alert" });
    const inputs = fields.map(([name, text, value]) => {
      const id = `edit-${key.id}-${name}`;
      const input = el("input", { id, type: "number", min: "0", step: name === "amount" ? "any" : "1", placeholder: name === "amount" ? "" : "default" });
      if (value !== null && value !== undefined && value !== "") input.value = String(value);
      return [name, el("div", { class: "field" }, el("label", { for: id, text }), input)];
    });
    const form = el("form", { class: "inline wrap", novalidate: true }, ...inputs.map(([, node]) => node),
      el("button", { type: "submit", class: "primary", text: label === "Top up" ? "Add credits" : "Save" }), error);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const values = Object.fromEntries(inputs.map(([name, node]) => [name, node.querySelector("input").value]));
      try {
        const changed = await submit(values);
        form.closest("tr").remove();
        tr.replaceWith(keyRow(changed));
      } catch (err) {
        error.textContent = err.message;
      }
    });
    const row = el("tr", { class: "form-row", role: "row", dataset: { formFor: `${key.id}:${label}` } },
      el("td", { colspan: 7, role: "cell" }, form));
    tr.after(row);
    row.querySelector("input").focus();
  });
  return button;
}

async function loadKeys(append) {
  $("keys-error").textContent = "";
  try {
    const { data } = await request("GET", "/v1/admin/keys", { query: { limit: 100, after: append ? keysAfter : undefined } });
    const body = $("keys-table").querySelector("tbody");
    if (!append) clear(body);
    for (const key of data.data) body.append(keyRow(key));
    keysAfter = data.last_id;
    $("keys-more").hidden = !data.has_more;
  } catch (err) {
    $("keys-error").textContent = err.message;
  }
}

async function createKey(event) {
  event.preventDefault();
  for (const id of Object.values(KEY_ERRORS)) $(id).textContent = "";
  for (const id of Object.values(KEY_FIELDS)) $(id).removeAttribute("aria-invalid");
  $("err-key-form").textContent = "";
  const name = $("k-name").value.trim();
  if (!name) {
    $("err-k-name").textContent = "A key needs a name.";
    $("k-name").setAttribute("aria-invalid", "true");
    $("k-name").focus();
    return;
  }
  const body = { name, admin: $("k-admin").checked };
  if ($("k-balance").value.trim() !== "") body.balance = toMicro($("k-balance").value);
  for (const field of ["requests_per_minute", "creates_per_minute", "max_active_tasks"]) {
    const value = limitValue($(KEY_FIELDS[field]).value);
    if (value !== null) body[field] = value;
  }
  try {
    const { data } = await request("POST", "/v1/admin/keys", { json: body });
    $("new-key-value").textContent = data.key;
    $("new-key-copied").textContent = "";
    $("new-key").hidden = false;
    $("key-form").reset();
    await loadKeys(false);
    $("new-key-copy").focus();
  } catch (err) {
    const field = err instanceof ApiError && err.param ? err.param.split(/[.[]/)[0] : null;
    if (field && KEY_ERRORS[field]) {
      $(KEY_ERRORS[field]).textContent = err.message;
      $(KEY_FIELDS[field]).setAttribute("aria-invalid", "true");
      $(KEY_FIELDS[field]).focus();
    } else {
      $("err-key-form").textContent = err.message;
    }
  }
}

async function copyKey() {
  const value = $("new-key-value").textContent;
  try {
    await navigator.clipboard.writeText(value);
    $("new-key-copied").textContent = "Copied.";
  } catch {
    const range = document.createRange();
    range.selectNodeContents($("new-key-value"));
    const selection = getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    $("new-key-copied").textContent = "Selected: press Ctrl+C (⌘C) to copy.";
  }
}

// Usage ---------------------------------------------------------------------------------------------

async function loadUsage() {
  $("usage-error").textContent = "";
  const days = Number($("u-days").value);
  const metric = $("u-metric").value;
  const group = $("u-group").value;
  const dayS = 86400;
  const today = Math.floor(Date.now() / 1000 / dayS) * dayS;
  const start = today - (days - 1) * dayS;
  try {
    const { data } = await request("GET", "/v1/admin/usage", { query: { interval: "day", start } });
    const seriesName = (r) => (group === "key" ? `${r.key_name} (${r.key_id.slice(-6)})` : r.model);
    const series = [...new Set(data.data.map(seriesName))].sort();
    const periods = [];
    for (let t = start; t <= today; t += dayS) {
      const label = new Date(t * 1000).toISOString().slice(5, 10);
      periods.push({ t, label, values: {} });
    }
    for (const r of data.data) {
      const period = periods.find((p) => p.t === r.period_start);
      if (!period) continue;
      const value = metric === "credits_charged" ? r.credits_charged / 1_000_000 : r[metric];
      period.values[seriesName(r)] = (period.values[seriesName(r)] || 0) + value;
    }
    const chart = $("usage-chart");
    clear(chart);
    const label = $("u-metric").selectedOptions[0].textContent;
    chart.append(stackedBars(periods, series, { title: `${label} per day, by ${group}`, width: chart.clientWidth }));
    const legend = $("usage-legend");
    clear(legend);
    series.forEach((name, i) => {
      const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
      swatch.style.background = colour(i);
      legend.append(el("li", {}, swatch, name));
    });
    if (!series.length) legend.append(el("li", { class: "muted", text: "No tasks in this range." }));
    const totals = new Map();
    for (const r of data.data) {
      const id = `${r.key_id}\u0000${r.model}`;
      const t = totals.get(id) || { ...r, tasks: 0, completed: 0, failed: 0, cancelled: 0, seconds_completed: 0, credits_charged: 0 };
      for (const f of ["tasks", "completed", "failed", "cancelled", "seconds_completed", "credits_charged"]) t[f] += r[f];
      totals.set(id, t);
    }
    const body = $("usage-table").querySelector("tbody");
    clear(body);
    for (const t of totals.values()) {
      body.append(el("tr", {}, el("td", { text: t.key_name }), el("td", { text: t.model }), el("td", { text: t.tasks }),
        el("td", { text: t.completed }), el("td", { text: t.failed }), el("td", { text: t.cancelled }),
        el("td", { text: t.seconds_completed }), el("td", { text: credits(t.credits_charged) })));
    }
  } catch (err) {
    $("usage-error").textContent = err.message;
  }
}

// Tasks ---------------------------------------------------------------------------------------------

let taskCursors = [null];
let taskNext = null;

async function loadTasks(pageIndex) {
  $("tasks-error").textContent = "";
  try {
    const { data } = await request("GET", "/v1/admin/tasks", {
      query: {
        status: $("t-status").value, model: $("t-model").value.trim(), channel: $("t-channel").value.trim(),
        key_id: $("t-key").value.trim(), after: taskCursors[pageIndex] ?? undefined, limit: 20,
      },
    });
    taskCursors = taskCursors.slice(0, pageIndex + 1);
    taskNext = data.has_more ? data.last_id : null;
    const body = $("tasks-table").querySelector("tbody");
    clear(body);
    for (const t of data.data) {
      body.append(el("tr", { dataset: { status: t.status } },
        el("td", { text: when(t.created_at) }),
        el("td", {}, t.key_name || "", el("br"), el("code", { class: "small", text: t.key_id })),
        el("td", { text: t.model }),
        el("td", {}, el("span", { class: "badge", dataset: { status: t.status }, text: STATUS_TEXT[t.status] || t.status }),
          t.deleted ? el("span", { class: "muted small", text: " deleted" }) : null,
          t.error ? el("span", { class: "muted small", title: t.error.message, text: ` ${t.error.code}` }) : null),
        el("td", { text: t.channel || "–" }),
        el("td", { text: t.size }),
        el("td", { text: t.seconds }),
        el("td", {}, el("code", { class: "small", text: t.video_id }))));
    }
    if (!data.data.length) body.append(el("tr", {}, el("td", { colspan: 8, class: "muted", text: "No tasks match." })));
    $("tasks-next").disabled = !taskNext;
    $("tasks-first").disabled = pageIndex === 0;
  } catch (err) {
    $("tasks-error").textContent = err.param ? `${err.param}: ${err.message}` : err.message;
  }
}

// Channels ------------------------------------------------------------------------------------------

async function loadChannels() {
  $("channels-error").textContent = "";
  try {
    const { data } = await request("GET", "/v1/admin/channels");
    const box = $("channels");
    clear(box);
    for (const c of data.data) {
      const rate = c.recent.error_rate === null ? "–" : `${(c.recent.error_rate * 100).toFixed(1)}%`;
      box.append(el("article", { class: "card channel", dataset: { channel: c.name } },
        el("div", { class: "task-head" }, el("h2", { text: c.name }),
          el("span", { class: "badge", dataset: { status: `circuit-${c.circuit.state}` }, text: `circuit ${c.circuit.state.replace("_", " ")}` })),
        el("dl", { class: "facts" },
          el("dt", { text: "Kind" }), el("dd", { text: `${c.kind}${c.enabled ? "" : " (disabled)"}` }),
          el("dt", { text: "In flight" }), el("dd", { text: `${c.in_flight}${c.max_concurrent ? ` of ${c.max_concurrent}` : ""}` }),
          el("dt", { text: "Error rate (1 h)" }), el("dd", { text: `${rate} (${c.recent.completed} ok, ${c.recent.failed} failed)` }),
          el("dt", { text: "Models" }), el("dd", { text: c.models.join(", ") }),
          el("dt", { text: "Priority" }), el("dd", { text: c.priority }),
          c.circuit.last_error ? el("dt", { text: "Last error" }) : null,
          c.circuit.last_error ? el("dd", { class: "small", text: c.circuit.last_error }) : null)));
    }
  } catch (err) {
    $("channels-error").textContent = err.message;
  }
}

export function initAdmin() {
  $("key-form").addEventListener("submit", createKey);
  $("new-key-copy").addEventListener("click", copyKey);
  $("keys-more").addEventListener("click", () => loadKeys(true));
  for (const id of ["u-days", "u-metric", "u-group"]) $(id).addEventListener("change", loadUsage);
  $("t-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    taskCursors = [null];
    loadTasks(0);
  });
  $("tasks-first").addEventListener("click", () => {
    taskCursors = [null];
    loadTasks(0);
  });
  $("tasks-next").addEventListener("click", () => {
    if (!taskNext) return;
    taskCursors.push(taskNext);
    loadTasks(taskCursors.length - 1);
  });
  $("channels-refresh").addEventListener("click", loadChannels);
}

export const adminViews = {
  "admin/keys": () => loadKeys(false),
  "admin/usage": loadUsage,
  "admin/tasks": () => {
    taskCursors = [null];
    return loadTasks(0);
  },
  "admin/channels": loadChannels,
};

export function forgetAdminState() {
  $("new-key").hidden = true;
  $("new-key-value").textContent = "";
}
