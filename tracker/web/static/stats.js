// The stats page's few enhancements; everything works without them.
(function () {
  "use strict";
  var poll = function (url, every, onData) {
    var tick = function () {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) { if (data && onData(data) !== false) setTimeout(tick, every); })
        .catch(function () { setTimeout(tick, every * 2); });
    };
    setTimeout(tick, every);
  };

  // Empty state: turn green, then show the stats, as soon as the first event is stored;
  // say why nothing comes when a page on localhost loaded the script.
  var waiting = document.querySelector("[data-waiting]");
  if (waiting) {
    poll(waiting.dataset.waiting, 3000, function (data) {
      if (data.local_page) {
        var note = waiting.querySelector("[data-local-note]");
        note.querySelector("[data-local-origin]").textContent = data.local_page;
        note.hidden = false;
        waiting.querySelector("[data-local]").open = true;
      }
      if (!data.has_events) return true;
      waiting.classList.add("ok");
      waiting.querySelector("[data-status-text]").textContent =
        "First pageview received! Loading your stats…";
      setTimeout(function () { location.reload(); }, 1500);
      return false;
    });
  }

  // Current visitors: refreshed every 30 seconds.
  var live = document.querySelector("[data-live]");
  if (live) {
    poll(live.dataset.live, 30000, function (data) {
      live.querySelector("b").textContent = data.current_visitors;
      live.querySelector(".dot").className = "dot " + (data.current_visitors ? "live" : "idle");
      live.querySelector("span:last-child").textContent =
        data.current_visitors === 1 ? "current visitor" : "current visitors";
    });
  }

  // Cards counted from raw events (goals, funnels) load once the page is shown.
  document.querySelectorAll("[data-card]").forEach(function (card) {
    fetch(card.dataset.card, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) { card.outerHTML = html; })
      .catch(function () { card.querySelector(".none").prepend("Could not load this card. "); });
  });

  // Chart hover: a cursor line and a tooltip with the value (and the comparison's), or
  // with an annotation marker's notes.
  document.querySelectorAll("[data-chart]").forEach(function (chart) {
    var svg = chart.querySelector("svg"), tip = chart.querySelector(".tip");
    var cursor = chart.querySelector(".cursor"), hits = chart.querySelectorAll(".hit");
    var add = function (parent, tag, text) {
      var el = document.createElement(tag);
      el.textContent = text;
      parent.appendChild(el);
    };
    var place = function (x, isNote) {
      tip.classList.toggle("note-tip", isNote);
      tip.hidden = false;
      tip.style.left = Math.min(Math.max(x, 12), 88) + "%";
      var vx = x * svg.viewBox.baseVal.width / 100;
      cursor.setAttribute("x1", vx);
      cursor.setAttribute("x2", vx);
      cursor.style.visibility = "visible";
    };
    var show = function (hit) {
      var d = hit.dataset;
      tip.textContent = "";
      add(tip, "div", d.label);
      add(tip, "b", d.value);
      if (d.cvalue) add(tip, "div", "vs " + d.cvalue + " (" + d.clabel + ")");
      place(parseFloat(d.x), false);
    };
    var showNotes = function (note) {
      tip.textContent = "";
      add(tip, "div", note.dataset.label);
      JSON.parse(note.dataset.notes).forEach(function (text) { add(tip, "b", text); });
      place(parseFloat(note.dataset.x), true);
    };
    hits.forEach(function (hit) {
      hit.addEventListener("mouseenter", function () { show(hit); });
      hit.addEventListener("click", function () { show(hit); });
      hit.querySelector("title").remove();  // the tooltip replaces the browser's
    });
    chart.querySelectorAll(".note").forEach(function (note) {
      note.addEventListener("mouseenter", function () { showNotes(note); });
      note.addEventListener("click", function () { showNotes(note); });
      note.querySelector("title").remove();
    });
    svg.addEventListener("mouseleave", function () { tip.hidden = true; cursor.style.visibility = "hidden"; });
  });
})();
