// Formatting of sizes, times and durations.

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(v) : v.toFixed(v < 10 ? 1 : 0)) + " " + units[i];
}

export function count(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US");
}

export function time(ms) {
  if (!ms) return "–";
  return new Date(ms).toISOString().replace("T", " ").replace("Z", " UTC");
}

export function duration(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return ms + " ms";
  let s = Math.round(ms / 1000);
  const parts = [];
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
    if (s >= size) { parts.push(Math.floor(s / size) + unit); s %= size; }
  }
  if (s || parts.length === 0) parts.push(s + "s");
  return parts.slice(0, 2).join(" ");
}

export function rate(r) {
  return r === null || r === undefined ? "–" : (r >= 10 ? r.toFixed(0) : r.toFixed(2)) + "/s";
}
