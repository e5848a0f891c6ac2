// Produce rates from the node's own Prometheus counters
// (`shale_produce_messages_total{topic}`): two samples of /metrics a known
// time apart give messages a second per topic.

/** `{topic: total}` of the produce counter in a /metrics text. */
export function produceTotals(text) {
  const totals = {};
  for (const line of text.split("\n")) {
    if (!line.startsWith("shale_produce_messages_total")) continue;
    const m = line.match(/^shale_produce_messages_total\{([^}]*)\}\s+([0-9.eE+-]+)/);
    if (!m) continue;
    const topic = (m[1].match(/topic="((?:[^"\\]|\\.)*)"/) || [])[1];
    if (topic === undefined) continue;
    totals[topic.replace(/\\(.)/g, "$1")] = Number(m[2]);
  }
  return totals;
}

/** Rates between two samples `{at, totals}`; a counter that went down (restart) counts from 0. */
export function ratesBetween(before, after) {
  const seconds = (after.at - before.at) / 1000;
  const out = {};
  if (seconds <= 0) return out;
  for (const [topic, total] of Object.entries(after.totals)) {
    const prev = before.totals[topic] ?? 0;
    const delta = total >= prev ? total - prev : total;
    out[topic] = delta / seconds;
  }
  return out;
}
