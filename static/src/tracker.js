/*
 * tracker.js: the beacon every tracked site loads. Readable source; the served file
 * static/tracker.js is built from it with terser (`make beacon`), and a test checks the two
 * agree. Protocol: README "Ingestion"; usage: README "Tracking script".
 *
 * Rules: never throw into the page (every entry point is guarded), never delay navigation
 * (no preventDefault; beacons survive unloads), store nothing in cookies or storage, and send
 * nothing at all when the visitor opted out. Written for browsers from 2020 on (ES2020).
 */
((window, document) => {
  const { location, history, navigator } = window;
  const noop = () => {};

  // Wrap a function so that nothing it does can throw into the host page.
  const guard =
    (fn) =>
    (...args) => {
      try {
        fn(...args);
      } catch {}
    };

  const listen = (target, type, handler, options) =>
    target.addEventListener(type, guard(handler), options);

  try {
    // The tag pasted twice (by hand and by a tag manager) must not count everything twice.
    if (window.tracker?.loaded) return;
    const script = document.currentScript;
    const config = script.dataset; // data-site -> config.site, data-allow-local -> allowLocal

    let optedOut;
    try {
      // The site owner's own visits: localStorage.tracker_ignore = "true" in the console.
      optedOut = localStorage.tracker_ignore == "true";
    } catch {} // storage can be blocked (sandboxed frames, strict privacy settings)
    if ("respectDnt" in config && (navigator.doNotTrack == "1" || navigator.globalPrivacyControl)) {
      optedOut = 1;
    }
    // Development copies and headless automation would pollute real numbers.
    if (
      !("allowLocal" in config) &&
      (/^(localhost|127\..*|\[::1\])$/.test(location.hostname) ||
        location.protocol == "file:" ||
        navigator.webdriver)
    ) {
      optedOut = 1;
    }
    if (optedOut) {
      window.tracker = noop; // calls from the page stay harmless; the queue is dropped
      return;
    }

    const site = config.site;
    const endpoint = config.api || new URL(script.src).origin + "/api/event";
    const hashRouting = "hash" in config;
    const downloadExtensions = (
      config.downloads || "pdf,docx,xlsx,pptx,csv,txt,zip,rar,7z,gz,dmg,exe,apk,mp3,mp4,mov"
    ).split(",");

    // The current page load (or SPA page): what its clicks and engagement repeat.
    let pageviewId, pageUrl, pageKey;
    let engagedMs, foregroundSince, maxScroll, reportedMs;

    const send = (type, data) => {
      const body = JSON.stringify({
        ...data,
        site,
        type,
        url: pageUrl,
        pageview_id: pageviewId,
      });
      // sendBeacon posts text/plain (no CORS preflight) and survives the page unloading.
      navigator.sendBeacon(endpoint, body) ||
        fetch(endpoint, { method: "POST", body, keepalive: true }).catch(noop);
    };

    // Fold the running foreground stretch into engagedMs, then restart or stop the clock:
    // time counts only while the page is visible and has focus.
    const tick = () => {
      const now = performance.now();
      if (foregroundSince) engagedMs += now - foregroundSince;
      foregroundSince = !document.hidden && document.hasFocus() && now;
    };

    const measureScroll = () => {
      maxScroll = Math.max(
        maxScroll,
        Math.min(
          100,
          Math.round(
            ((window.scrollY + window.innerHeight) * 100) / document.documentElement.scrollHeight
          )
        )
      );
    };

    // Sent when the page is hidden or left. engaged_ms is cumulative for the pageview (the
    // collector keeps the largest); a repeat with nothing new (pagehide after hidden) is skipped.
    const sendEngagement = () => {
      tick();
      const ms = Math.round(engagedMs);
      if (ms != reportedMs) {
        send("engagement", { engaged_ms: (reportedMs = ms), scroll: maxScroll });
      }
    };

    const routeKey = () => location.pathname + (hashRouting ? location.hash : "");

    const pageview = (referrer) => {
      pageviewId = Math.random().toString(36).slice(2);
      // The fragment is only sent when it is the route: it can hold tokens (OAuth, magic links).
      pageUrl = hashRouting ? location.href : location.href.split("#")[0];
      pageKey = routeKey();
      engagedMs = foregroundSince = maxScroll = 0;
      reportedMs = -1;
      tick();
      measureScroll();
      send("pageview", { referrer, title: document.title, screen: window.innerWidth });
    };

    // Single-page apps: a new pageview when the route changes (not on a query-only change).
    const routeChanged = guard(() => {
      if (routeKey() != pageKey) {
        const previousUrl = pageUrl;
        sendEngagement();
        pageview(previousUrl);
      }
    });

    // An element tagged data-track="Name" sends an event Name, its data-track-* as props.
    const sendTagged = (tagged) => {
      const props = {};
      for (const { name, value } of tagged.attributes) {
        if (name.startsWith("data-track-")) props[name.slice(11)] = value;
      }
      send("event", { name: tagged.dataset.track, props });
    };

    const onClick = (event) => {
      if (event.button > 1) return; // auxclick: only the middle button opens a link
      // A tagged form counts when submitted, not when one of its fields is clicked.
      const tagged = event.target.closest("[data-track]:not(form)");
      const link = event.target.closest("a[href]");
      if (tagged) {
        sendTagged(tagged);
      } else if (link?.host) {
        // Only http(s) links have a host (not mailto:, tel:, javascript:).
        const download =
          link.hasAttribute("download") ||
          downloadExtensions.includes(link.pathname.split(".").pop().toLowerCase());
        if (download || link.host != location.host) {
          send("click", { name: download ? "File Download" : "Outbound Link", target: link.href });
        }
      }
    };

    // The collector turns numbers and booleans into strings and drops nested props.
    // revenue: {amount: 42.5 or "42.50", currency: "EUR"}, checked by the collector.
    const track = (name, options) =>
      send("event", { name, props: options?.props, revenue: options?.revenue });

    const start = (firstPaint) => {
      for (const method of ["pushState", "replaceState"]) {
        const original = history[method];
        history[method] = function (...args) {
          const result = original.apply(this, args); // the page's own errors still surface
          routeChanged();
          return result;
        };
      }
      listen(window, "popstate", routeChanged);
      if (hashRouting) listen(window, "hashchange", routeChanged);

      // Capture phase: a click is seen even when the page stops its propagation.
      listen(document, "click", onClick, true);
      listen(document, "auxclick", onClick, true);
      listen(document, "submit", ({ target }) => target.dataset.track && sendTagged(target), true);

      listen(document, "visibilitychange", () => (document.hidden ? sendEngagement() : tick()));
      listen(window, "focus", tick);
      listen(window, "blur", tick);
      listen(window, "scroll", measureScroll, { passive: true });
      listen(window, "pagehide", () => {
        sendEngagement();
        foregroundSince = 0; // leaving: the moments until the page is hidden are not engagement
      });
      // A back/forward-cache restore is a new view of the page.
      listen(window, "pageshow", (event) => event.persisted && pageview(document.referrer));

      const queued = window.tracker?.q || [];
      window.tracker = guard(track);
      window.tracker.loaded = 1;
      pageview(document.referrer);
      // The visitor has been looking at the page since it first painted, before this ran.
      if (foregroundSince && firstPaint) foregroundSince = firstPaint;
      for (const args of queued) window.tracker(...args);
    };

    // A prerendered page the visitor may never see is counted once it is shown.
    if (document.prerendering) listen(document, "prerenderingchange", () => start());
    else start(performance.getEntriesByName("first-contentful-paint")[0]?.startTime);
  } catch {}
})(window, document);
