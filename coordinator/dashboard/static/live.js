// The round page follows a running round without reloading: it swaps in the round's state and
// sites every few seconds, and reloads once when the round ends (to show its figures and forms).
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live || !live.dataset.live) return;
  const every = 1000 * Number(live.dataset.pollS || 2);
  async function poll() {
    try {
      const answer = await fetch(live.dataset.live, { credentials: "same-origin", cache: "no-store" });
      if (answer.status === 401) { window.location.reload(); return; }  // signed out: the page says so
      if (answer.ok) {
        live.innerHTML = await answer.text();
        if (live.querySelector("[data-terminal]")) { window.location.reload(); return; }
      }
    } catch (error) {
      // The coordinator restarting: keep asking.
    }
    window.setTimeout(poll, every);
  }
  window.setTimeout(poll, every);
})();
