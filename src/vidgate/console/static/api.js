// The one place the console talks to the server: the bearer header, the error envelope, poll pacing.

const KEY_STORAGE = "vidgate.console.key";
// The API lives next to /console, whatever path prefix a proxy adds in front of both.
const API_BASE = new URL("../", document.baseURI);

export class ApiError extends Error {
  constructor(status, code, param, message) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
  }
}

export const session = {
  get key() {
    return sessionStorage.getItem(KEY_STORAGE);
  },
  set key(value) {
    if (value) sessionStorage.setItem(KEY_STORAGE, value);
    else sessionStorage.removeItem(KEY_STORAGE);
  },
};

function url(path, query) {
  const target = new URL(path.replace(/^\//, ""), API_BASE);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") target.searchParams.set(name, String(value));
  }
  return target;
}

/** `request("GET", "/v1/videos", {query, json, form, key})` -> {data, headers, status}; throws ApiError. */
export async function request(method, path, options = {}) {
  const key = options.key ?? session.key;
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  let body;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  } else if (options.form !== undefined) {
    body = options.form; // FormData: the browser writes the multipart boundary
  }
  let response;
  try {
    response = await fetch(url(path, options.query), {
      method, headers, body, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer",
    });
  } catch (err) {
    throw new ApiError(0, "network_error", null, "The server could not be reached.");
  }
  if (options.raw && response.ok) return { data: await response.blob(), headers: response.headers, status: response.status };
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(
      response.status,
      error.code || `http_${response.status}`,
      error.param || null,
      error.message || `The server answered ${response.status}.`,
    );
  }
  return { data, headers: response.headers, status: response.status };
}

/** How long to wait before the next poll: the server's hint, else a fallback of 1.5 s. */
export function pollDelay(headers, fallbackMs = 1500) {
  const hinted = Number(headers && headers.get("openai-poll-after-ms"));
  if (Number.isFinite(hinted) && hinted > 0) return Math.min(hinted, 30_000);
  const retry = Number(headers && headers.get("retry-after"));
  if (Number.isFinite(retry) && retry > 0) return Math.min(retry * 1000, 30_000);
  return fallbackMs;
}

/** A key's identity: 401 -> ApiError; then whether it is an admin's (the admin API answers 404 if not). */
export async function checkKey(key) {
  await request("GET", "/v1/videos", { query: { limit: 1 }, key });
  try {
    await request("GET", "/v1/admin/channels", { key });
    return { admin: true };
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return { admin: false };
    throw err;
  }
}
