// Keep the dashboard current: re-fetch this page every few seconds and swap the #live section.
// Same-origin fetch of our own server-rendered HTML; no third-party code, no tokens in URLs.
(function () {
  "use strict";
  const live = document.getElementById("live");
  if (!live) return;
  const seconds = Number(live.dataset.refreshSeconds || 5);
  async function refresh() {
    try {
      const response = await fetch(window.location.pathname, {
        credentials: "same-origin",
        headers: { "Accept": "text/html" },
        cache: "no-store",
      });
      if (response.ok) {
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.getElementById("live");
        if (fresh) {
          // Folded sections the person opened stay open across the swap (matched by id).
          const opened = [...live.querySelectorAll("details[id][open]")].map((d) => d.id);
          live.innerHTML = fresh.innerHTML;
          for (const id of opened) {
            const details = document.getElementById(id);
            if (details) details.open = true;
          }
        }
      }
    } catch (error) {
      // The server may be restarting; the next tick tries again.
    }
    window.setTimeout(refresh, seconds * 1000);
  }
  window.setTimeout(refresh, seconds * 1000);
})();
