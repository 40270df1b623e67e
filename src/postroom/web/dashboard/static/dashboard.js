// Postroom dashboard: the little that needs JavaScript. Everything works without it, except
// auto-refresh, the preset picker filling in the form, and a reload of a page that answered
// a form fetching the page anew (without it, the browser offers to post the form again).
(function () {
  "use strict";

  var REFRESH_MS = 5000;
  var paused = false;

  function visible() {
    return document.visibilityState === "visible";
  }

  function busy() {
    var el = document.activeElement;
    return el && /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName);
  }

  // Lists: replace the rows of <tbody data-refresh="URL"> with a fresh fragment.
  function refreshRows(tbody) {
    setInterval(function () {
      if (paused || !visible()) return;
      fetch(tbody.dataset.refresh, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) return;
          var t = document.createElement("template");
          t.innerHTML = "<table><tbody>" + html + "</tbody></table>";
          var fresh = t.content.querySelector("tbody");
          if (fresh) tbody.replaceChildren.apply(tbody, Array.prototype.slice.call(fresh.childNodes));
        })
        .catch(function () {});
    }, REFRESH_MS);
  }

  // Detail pages of a message still on its way: reload until it is sent or abandoned.
  function reloadLater(el) {
    var seconds = parseFloat(el.dataset.reload) || 3;
    setInterval(function () {
      if (paused || !visible() || busy()) return;
      // Reload without a one-time notice ("queued again") that no longer describes the page.
      var url = new URL(window.location.href);
      url.searchParams.delete("notice");
      window.location.replace(url.toString());
    }, seconds * 1000);
  }

  function setupToggle(button) {
    button.addEventListener("click", function () {
      paused = !paused;
      button.setAttribute("aria-pressed", paused ? "true" : "false");
      button.textContent = paused ? "Resume auto-refresh" : "Pause auto-refresh";
    });
  }

  // The tenant form: show the fieldsets of the chosen delivery and auth kind.
  function syncSections(form) {
    var strategy = form.querySelector("[data-strategy]");
    var auth = form.querySelector("[data-auth]");
    form.querySelectorAll("[data-for-strategy]").forEach(function (el) {
      el.hidden = strategy && el.dataset.forStrategy !== strategy.value;
    });
    form.querySelectorAll("[data-for-auth]").forEach(function (el) {
      el.hidden = auth && el.dataset.forAuth !== auth.value;
    });
  }

  function setValue(form, name, value) {
    var field = form.elements.namedItem(name);
    if (field && value !== undefined && value !== null) field.value = value;
  }

  function element(tag, text) {
    var el = document.createElement(tag);
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function showNotes(aside, preset) {
    var title = aside.querySelector("h2");
    aside.replaceChildren(title);
    if (!preset) {
      var none = element("p", "Choose a provider preset to see how to set it up.");
      none.className = "muted";
      aside.appendChild(none);
      return;
    }
    var intro = element("p");
    intro.appendChild(element("strong", preset.title));
    intro.appendChild(document.createTextNode(": " + preset.summary));
    aside.appendChild(intro);
    [["Username", preset.username_format], ["Limits", (preset.limits || []).join(", ")]].forEach(function (pair) {
      if (!pair[1]) return;
      var p = element("p");
      p.appendChild(element("strong", pair[0] + ":"));
      p.appendChild(document.createTextNode(" " + pair[1]));
      aside.appendChild(p);
    });
    [["Set-up", preset.steps, "ol"], ["Good to know", preset.notes, "ul"]].forEach(function (group) {
      if (!group[1] || !group[1].length) return;
      aside.appendChild(element("h3", group[0]));
      var list = element(group[2]);
      group[1].forEach(function (text) { list.appendChild(element("li", text)); });
      aside.appendChild(list);
    });
    if (preset.credentials_url && /^https:\/\//.test(preset.credentials_url)) {
      var link = element("a", "Where to get the credentials");
      link.href = preset.credentials_url;
      link.rel = "noopener noreferrer";
      link.target = "_blank";
      var p2 = element("p");
      p2.appendChild(link);
      aside.appendChild(p2);
    }
  }

  function setupPresetPicker(form) {
    var picker = form.querySelector("[data-preset-picker]");
    var data = document.getElementById("preset-data");
    var aside = document.querySelector("[data-preset-notes]");
    if (!picker || !data) return;
    var presets = {};
    JSON.parse(data.textContent).forEach(function (p) { presets[p.name] = p; });
    picker.addEventListener("change", function () {
      var p = presets[picker.value];
      if (aside) showNotes(aside, p);
      if (!p) return;
      if (p.kind === "smtp") {
        setValue(form, "strategy", "smtp");
        setValue(form, "host", p.host);
        setValue(form, "port", p.port);
        setValue(form, "security", p.security);
        setValue(form, "server_name", "");
        if (p.username || !p.login) setValue(form, "username", p.username);
        var user = form.elements.namedItem("username");
        if (user) user.placeholder = p.username_format || "";
        var help = form.querySelector("[data-username-format]");
        if (help) help.textContent = p.username_format || "";
      } else {
        setValue(form, "strategy", "http");
        setValue(form, "http_url", p.url);
        setValue(form, "http_method", p.method);
        setValue(form, "http_headers", p.headers);
        setValue(form, "http_auth", p.auth);
        setValue(form, "http_key_name", p.key_name);
        setValue(form, "http_key_in", p.key_in);
        setValue(form, "http_user", p.user);
        setValue(form, "http_body", p.body);
        var key = form.elements.namedItem("http_key_value");
        if (key && p.key_hint) key.placeholder = p.key_hint;
      }
      syncSections(form);
      var first = form.elements.namedItem(p.kind === "smtp" ? "host" : "http_url");
      if (first && first.value.indexOf("{") >= 0) first.focus();
    });
  }

  // A page that answers a form which made a token or a login, or sent a test email: a reload
  // fetches the tenant's page (at the same #part) instead of posting the form again, which
  // would make another token (retiring the one just copied), another login, or another email.
  function reloadAsGet(el) {
    var url = new URL(el.dataset.reloadAs, window.location.href);
    if (url.origin === window.location.origin && window.history.replaceState) {
      window.history.replaceState(null, "", url.pathname + window.location.hash);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var once = document.querySelector("[data-reload-as]");
    if (once) reloadAsGet(once);
    document.querySelectorAll("tbody[data-refresh]").forEach(refreshRows);
    document.querySelectorAll("[data-reload]").forEach(reloadLater);
    document.querySelectorAll("[data-refresh-toggle]").forEach(setupToggle);
    var form = document.getElementById("tenant-form");
    if (form) {
      syncSections(form);
      form.addEventListener("change", function (event) {
        if (event.target.matches("[data-strategy], [data-auth]")) syncSections(form);
      });
      setupPresetPicker(form);
    }
  });
})();
