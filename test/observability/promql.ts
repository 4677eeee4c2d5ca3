/**
 * The metric names a PromQL expression reads, found the way PromQL's grammar tells them apart: after string
 * literals, label matchers ({…}), ranges ([…]) and grouping clauses (by/without/on/ignoring/group_*(…)) are
 * dropped, a metric name is an identifier that is neither a function (followed by "(") nor a keyword, and
 * numbers and durations are skipped. Grafana's $variables count as nothing.
 *
 *   metricNamesIn('histogram_quantile(0.9, sum by (le) (rate(a_bucket{x="y"}[5m])))') // ['a_bucket']
 */
const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'inf',
  'nan',
]);

export function metricNamesIn(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' ')
    .replace(/\$\{?\w+\}?/g, ' ');
  const names: string[] = [];
  const token = /(\d+(?:\.\d+)?(?:e[+-]?\d+)?(?:ms|[smhdwy])*)|([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/gi;
  for (const m of bare.matchAll(token)) {
    const [, number, name, call] = m;
    if (number || call || KEYWORDS.has(name.toLowerCase())) continue;
    names.push(name);
  }
  return [...new Set(names)];
}
