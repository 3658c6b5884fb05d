// The console's only script: live event rows over server-sent events, confirmations, and
// hiding the thumbnails of cameras without a recent frame.
// Loaded from /static (the Content-Security-Policy allows no inline script).
"use strict";

function followEvents(rows) {
  const status = document.getElementById("live-status");
  const source = new EventSource(rows.dataset.live);
  source.onopen = () => { status.textContent = "live"; rows.dataset.connected = "yes"; };
  source.onmessage = (message) => {
    const holder = document.createElement("tbody");
    holder.innerHTML = message.data;
    const row = holder.firstElementChild;
    if (!row) return;
    const old = document.getElementById(row.id);
    if (old) old.replaceWith(row); else rows.prepend(row);
  };
  source.addEventListener("failed", (message) => {
    status.textContent = "live updates stopped: " + message.data;
    source.close();
  });
  source.onerror = () => { status.textContent = "reconnecting…"; };
}

document.addEventListener("DOMContentLoaded", () => {
  const rows = document.querySelector("[data-live]");
  if (rows) followEvents(rows);
  // A camera without a recent frame has no thumbnail (404): no broken-image icon then.
  for (const img of document.querySelectorAll("img.camera-thumb")) {
    img.addEventListener("error", () => img.remove());
  }
  for (const form of document.querySelectorAll("form.confirm")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
});
