// The console's shell: sign-in, sign-out, and a hash router over the views.

import { ApiError, checkKey, session } from "./api.js";
import { adminViews, forgetAdminState, initAdmin } from "./admin.js";
import { initHistory, showHistory } from "./history.js";
import { initPlayground, loadModels, openVideo, resetPlayground } from "./playground.js";
import { $ } from "./util.js";

const ROLE_STORAGE = "vidgate.console.admin";
let admin = false;

function showView(name) {
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `view-${name}`;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.route === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function route() {
  if (!session.key) {
    showView("signin");
    $("signin-key").focus();
    return;
  }
  const name = location.hash.replace(/^#\/?/, "") || "playground";
  if (name === "playground") {
    showView("playground");
  } else if (name === "history") {
    showView("history");
    showHistory();
  } else if (admin && adminViews[name]) {
    showView(name);
    adminViews[name]();
  } else {
    showView("notfound"); // an admin page for a key that is not an admin's looks like any unknown page
  }
}

function signedIn(isAdmin) {
  admin = isAdmin;
  $("nav").hidden = false;
  $("who").hidden = false;
  $("who-label").textContent = isAdmin ? "admin key" : "signed in";
  for (const link of document.querySelectorAll("#nav [data-admin]")) link.hidden = !isAdmin;
  loadModels(); // the playground's model picker: the models this key may use
}

async function signIn(event) {
  event.preventDefault();
  const key = $("signin-key").value.trim();
  const error = $("signin-error");
  error.textContent = "";
  $("signin-key").removeAttribute("aria-invalid");
  if (!key) {
    error.textContent = "Enter an API key.";
    $("signin-key").setAttribute("aria-invalid", "true");
    return;
  }
  $("signin-submit").disabled = true;
  try {
    const { admin: isAdmin } = await checkKey(key);
    session.key = key;
    sessionStorage.setItem(ROLE_STORAGE, isAdmin ? "1" : "0");
    $("signin-key").value = "";
    signedIn(isAdmin);
    if (!location.hash || location.hash === "#/") location.hash = "#/playground";
    else route();
    $("main").focus();
  } catch (err) {
    error.textContent =
      err instanceof ApiError && err.status === 401
        ? "This key was not accepted: it is unknown or revoked. Check it and try again."
        : `Could not sign in: ${err.message}`;
    $("signin-key").setAttribute("aria-invalid", "true");
    $("signin-key").focus();
  } finally {
    $("signin-submit").disabled = false;
  }
}

function signOut() {
  session.key = null;
  sessionStorage.removeItem(ROLE_STORAGE);
  admin = false;
  resetPlayground();
  forgetAdminState();
  $("nav").hidden = true;
  $("who").hidden = true;
  route();
}

async function start() {
  initPlayground();
  initHistory({
    open: (id) => {
      location.hash = "#/playground";
      openVideo(id);
    },
  });
  initAdmin();
  $("signin-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  if (session.key) {
    // A reload in the same tab: check the key again (it may have been revoked meanwhile).
    try {
      const { admin: isAdmin } = await checkKey(session.key);
      signedIn(isAdmin);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) session.key = null;
      else signedIn(sessionStorage.getItem(ROLE_STORAGE) === "1");
    }
  }
  route();
}

start();
