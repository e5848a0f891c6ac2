// The console's shell: hash routing (`#/page/arg`) to one page module at a
// time; each page renders into <main> and may return a stop function
// (timers, polling) called when the user leaves it.
import { errorBox, h, replace } from "./dom.js";
import { forgetToken, token, watchToken } from "./api.js";
import * as topics from "./topics.js";
import * as groups from "./groups.js";
import * as messages from "./messages.js";
import * as timers from "./timers.js";
import * as dlq from "./dlq.js";
import * as cluster from "./cluster.js";

const pages = { topics, groups, messages, timers, dlq, cluster };
const main = document.getElementById("main");
let stop = null;
let generation = 0;

function route() {
  const [name = "topics", ...args] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  return { name: pages[name] ? name : "topics", args };
}

async function render() {
  if (stop) { stop(); stop = null; }
  const { name, args } = route();
  const mine = ++generation;
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.page === name);
  }
  replace(main, h("p", { class: "muted" }, "Loading…"));
  const view = h("div", { "data-page": name });
  try {
    const stopper = await pages[name].render(view, args);
    if (mine !== generation) { if (stopper) stopper(); return; }
    stop = stopper || null;
    replace(main, view);
  } catch (err) {
    if (mine !== generation) return;
    replace(main, h("h1", {}, pages[name].title), errorBox(err));
  }
  main.dataset.ready = name;
}

const forget = document.getElementById("forget-token");
forget.addEventListener("click", () => { forgetToken(); render(); });
watchToken((t) => { forget.hidden = !t; });
forget.hidden = !token();

window.addEventListener("hashchange", render);
render();
