// DOM helpers. Data is only ever inserted as text (createTextNode /
// textContent), never parsed as HTML, so message bodies, names and
// properties cannot inject markup or script.

/** Creates `<tag>` with attributes (`on*` functions become listeners) and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (k === "class") {
      el.className = v;
    } else if (k === "style") {
      for (const [p, val] of Object.entries(v)) el.style.setProperty(p, val);
    } else if (k === "value") {
      el.value = v;
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** A table: `columns` are `[title, cell(row), className?]`. */
export function table(columns, rows, empty = "Nothing here.") {
  if (rows.length === 0) return h("div", { class: "empty card" }, empty);
  return h("table", {},
    h("thead", {}, h("tr", {}, columns.map(([title, , cls]) => h("th", { class: cls }, title)))),
    h("tbody", {}, rows.map((row) =>
      h("tr", {}, columns.map(([, cell, cls]) => h("td", { class: cls }, cell(row)))))));
}

/** An error box with the contract's code and message. */
export function errorBox(err) {
  const code = err && err.code ? err.code : "ERROR";
  const message = err && err.message ? err.message : String(err);
  return h("div", { class: "error", role: "alert" }, h("code", {}, code), message);
}

export function notice(text) {
  return h("div", { class: "notice", role: "status" }, text);
}

export function stat(label, value) {
  return h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
}
