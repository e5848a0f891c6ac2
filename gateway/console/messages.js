// Message browser: by queue and offset (replay), by message id, by key;
// each message with its metadata, properties and body (as text).
import { get, seg } from "./api.js";
import { errorBox, h, replace } from "./dom.js";
import { time } from "./format.js";

export const title = "Messages";

/** One message: its metadata, properties and body. */
export function messageCard(m, ...actions) {
  const meta = (label, value) => value === undefined || value === null || value === "" ? null
    : h("span", {}, h("b", {}, label), value);
  const props = Object.entries(m.properties || {});
  return h("div", { class: "message", "data-message-id": m.message_id },
    h("div", { class: "meta" },
      meta("id", h("span", { class: "mono" }, m.message_id)),
      meta("topic", m.topic), meta("queue", m.queue), meta("offset", m.offset),
      meta("state", m.state), meta("tag", m.tag),
      meta("keys", (m.keys || []).join(", ")), meta("group", m.message_group),
      meta("born", time(m.born_ms)), meta("stored", m.store_ms ? time(m.store_ms) : null),
      meta("deliver at", m.deliver_at_ms ? time(m.deliver_at_ms) : null),
      actions.length ? h("span", {}, actions) : null),
    props.length ? h("table", { class: "props" }, h("tbody", {},
      props.map(([k, v]) => h("tr", {}, h("td", { class: "mono" }, k), h("td", { class: "mono" }, v))))) : null,
    m.body !== undefined ? h("pre", { class: "body" }, m.body)
      : h("pre", { class: "body" }, h("span", { class: "muted" }, "(binary, base64) "), m.body_base64));
}

export async function render(view, [topic, queue, offset]) {
  const { topics } = await get("/v1/topics");
  const names = topics.map((t) => t.name);
  const results = h("div", { id: "results" });
  const topicSelect = (id) => h("select", { id, required: true },
    names.map((n) => h("option", { value: n, selected: n === topic }, n)));
  const show = async (what, path) => {
    replace(results, h("p", { class: "muted" }, "Loading…"));
    try {
      const answer = await get(path);
      const list = answer.messages || [answer];
      replace(results,
        h("h2", {}, `${list.length} message${list.length === 1 ? "" : "s"} ${what}`),
        answer.next_offset !== undefined
          ? h("p", { class: "muted" }, `queue range [${answer.min_offset}, ${answer.max_offset}), next offset ${answer.next_offset}`)
          : null,
        list.length ? list.map((m) => messageCard(m)) : h("div", { class: "empty card" }, "No messages."));
    } catch (err) {
      replace(results, errorBox(err));
    }
  };
  const readOffsets = () => {
    const t = byOffset.querySelector("#offset-topic").value;
    const q = byOffset.querySelector("#offset-queue").value;
    const o = byOffset.querySelector("#offset-offset").value;
    const n = byOffset.querySelector("#offset-max").value;
    show(`of ${t} queue ${q} from offset ${o}`,
      `/v1/topics/${seg(t)}/queues/${seg(q)}/messages?offset=${seg(o)}&max_messages=${seg(n)}`);
  };
  const byOffset = h("form", { class: "inline", id: "by-offset", onsubmit: (e) => { e.preventDefault(); readOffsets(); } },
    h("label", {}, "Topic", topicSelect("offset-topic")),
    h("label", {}, "Queue", h("input", { id: "offset-queue", type: "number", min: 0, value: queue || 0, required: true })),
    h("label", {}, "Offset", h("input", { id: "offset-offset", type: "number", min: 0, value: offset || 0, required: true })),
    h("label", {}, "Max", h("input", { id: "offset-max", type: "number", min: 1, max: 100, value: 20, required: true })),
    h("button", { class: "primary", type: "submit" }, "Read"));
  const byId = h("form", { class: "inline", id: "by-id", onsubmit: (e) => {
    e.preventDefault();
    const t = byId.querySelector("#id-topic").value;
    const id = byId.querySelector("#id-id").value.trim();
    show(`with id ${id}`, `/v1/topics/${seg(t)}/messages/${seg(id)}`);
  } },
    h("label", {}, "Topic", topicSelect("id-topic")),
    h("label", {}, "Message id", h("input", { id: "id-id", size: 34, pattern: "[0-9a-fA-F]{32}", required: true })),
    h("button", { class: "primary", type: "submit" }, "Find"));
  const byKey = h("form", { class: "inline", id: "by-key", onsubmit: (e) => {
    e.preventDefault();
    const t = byKey.querySelector("#key-topic").value;
    const k = byKey.querySelector("#key-key").value;
    show(`with key ${k}`, `/v1/topics/${seg(t)}/messages?key=${seg(k)}&max_messages=32`);
  } },
    h("label", {}, "Topic", topicSelect("key-topic")),
    h("label", {}, "Key", h("input", { id: "key-key", required: true })),
    h("button", { class: "primary", type: "submit" }, "Search"));
  view.append(
    h("h1", {}, "Message browser"),
    h("div", { class: "card" }, h("h2", { style: { "margin-top": 0 } }, "By queue and offset"), byOffset),
    h("div", { class: "card" }, h("h2", { style: { "margin-top": 0 } }, "By message id"), byId),
    h("div", { class: "card" }, h("h2", { style: { "margin-top": 0 } }, "By key"), byKey),
    results);
  if (topic && queue !== undefined) readOffsets();
}
