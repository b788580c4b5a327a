// A small JSON Schema (2020-12) checker for the engine's config schema
// (/deployment-engine/config/schema): the keywords that schema uses, each
// failure as a problem {path, reason} in the engine's own paths
// ("properties.domain", "components.web[1]"), so the config form shows it
// where it shows the engine's. "x-reason" is the sentence a failing rule
// carries; "x-at" the property it names.

const join = (path, key) => (path ? path + "." + key : key);

function typeOf(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v; // string, boolean, object
}

function typeOK(want, v) {
  const t = typeOf(v);
  return (Array.isArray(want) ? want : [want]).some((w) => w === t || (w === "number" && t === "integer"));
}

function equal(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

// check adds to out every problem of v against schema s at path.
function check(s, v, path, out) {
  if (s === true || s === undefined) return;
  if (s === false) {
    out.push({ path, reason: "not allowed" });
    return;
  }
  const reason = (fallback) => s["x-reason"] || fallback;
  const n0 = out.length;
  if (s.type !== undefined && !typeOK(s.type, v)) {
    out.push({ path, reason: reason("must be " + [].concat(s.type).join(" or ")) });
    return;
  }
  if (s.const !== undefined && !equal(s.const, v)) out.push({ path, reason: reason("must be " + JSON.stringify(s.const)) });
  if (s.enum && !s.enum.some((e) => equal(e, v))) out.push({ path, reason: reason("must be one of " + s.enum.map((e) => JSON.stringify(e)).join(", ")) });
  if (typeof v === "string") {
    if (s.pattern && !new RegExp(s.pattern, "u").test(v)) out.push({ path, reason: reason("not valid") });
    if (s.minLength !== undefined && [...v].length < s.minLength) out.push({ path, reason: reason("too short") });
    if (s.maxLength !== undefined && [...v].length > s.maxLength) out.push({ path, reason: reason("too long") });
  }
  if (typeof v === "number") {
    if (s.minimum !== undefined && v < s.minimum) out.push({ path, reason: reason("must be at least " + s.minimum) });
    if (s.maximum !== undefined && v > s.maximum) out.push({ path, reason: reason("must be at most " + s.maximum) });
  }
  if (Array.isArray(v)) {
    if (s.minItems !== undefined && v.length < s.minItems) out.push({ path, reason: reason("needs at least " + s.minItems) });
    if (s.maxItems !== undefined && v.length > s.maxItems) out.push({ path, reason: reason("at most " + s.maxItems) });
    v.forEach((item, i) => {
      const p = path + "[" + i + "]";
      if (s.uniqueItems && v.slice(0, i).some((x) => equal(x, item))) out.push({ path: p, reason: "listed twice for this component" });
      if (s.items !== undefined) check(s.items, item, p, out);
    });
  }
  if (v && typeOf(v) === "object") {
    const keys = Object.keys(v);
    if (s.minProperties !== undefined && keys.length < s.minProperties) out.push({ path, reason: reason("needs at least " + s.minProperties + " entries") });
    for (const r of s.required || []) {
      if (!(r in v)) out.push({ path: join(path, r), reason: "missing" });
    }
    for (const [k, deps] of Object.entries(s.dependentRequired || {})) {
      if (!(k in v)) continue;
      for (const d of deps) if (!(d in v)) out.push({ path: join(path, k), reason: k + " needs " + d + ", which the config does not place" });
    }
    for (const k of keys) {
      const p = join(path, k);
      if (s.propertyNames) check(s.propertyNames, k, p, out);
      if (s.properties && k in s.properties) check(s.properties[k], v[k], p, out);
      else if (s.additionalProperties !== undefined) check(s.additionalProperties, v[k], p, out);
    }
  }
  for (const sub of s.allOf || []) check(sub, v, path, out);
  if (s.anyOf && !s.anyOf.some((sub) => valid(sub, v))) {
    out.push({ path: s["x-at"] ? join(path, s["x-at"]) : path, reason: reason("matches none of the allowed forms") });
  }
  if (s.not !== undefined && valid(s.not, v)) out.push({ path, reason: reason("not allowed") });
  if (s.if !== undefined) {
    if (valid(s.if, v)) check(s.then, v, path, out);
    else check(s.else, v, path, out);
  }
  // One sentence per path is enough: the first names the trouble.
  const seen = new Set();
  const mine = out.splice(n0);
  for (const p of mine) {
    if (seen.has(p.path)) continue;
    seen.add(p.path);
    out.push(p);
  }
}

function valid(s, v) {
  const out = [];
  check(s, v, "", out);
  return out.length === 0;
}

// validate returns every problem of value against schema.
export function validate(schema, value) {
  const out = [];
  check(schema, value, "", out);
  return out;
}
