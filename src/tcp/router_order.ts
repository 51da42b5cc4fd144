/**
 * The order in which an entrypoint's routers are tried, as traefik orders them: by `priority`,
 * else the rule's length, the lone catch-all ``HostSNI(`*`)`` last (-1); equal priorities by
 * name, so that the order never depends on how a file or a store listed them. Rules are parsed
 * once per rule text and kept: checking, building and describing all read the same parse.
 */
import { parseRule, type Rule, rulePriority } from "./rule.ts";

/** A router as ordering needs it. */
export interface OrderedRouter {
  rule: string;
  ruleSyntax?: "v2" | "v3";
  priority?: number;
  entryPoints: readonly string[];
}

/** Parsed rules by text; cleared past this many, so that a store's churn cannot grow it. */
const MAX_KEPT = 200_000;
const parsed = new Map<string, Rule>();

/** The parse of rule `text` in traefik's `syntax` (throws RuleError), made once. */
export function ruleOf(text: string, syntax: "v2" | "v3" = "v3"): Rule {
  const key = syntax === "v2" ? `v2\u0000${text}` : text;
  let rule = parsed.get(key);
  if (!rule) {
    rule = parseRule(text, syntax);
    if (parsed.size >= MAX_KEPT) parsed.clear();
    parsed.set(key, rule);
  }
  return rule;
}

/** A router's priority: its own, else traefik's default for its rule. */
export function priorityOf(
  router: { rule: string; priority?: number; ruleSyntax?: "v2" | "v3" },
): number {
  return router.priority ?? rulePriority(router.rule, ruleOf(router.rule, router.ruleSyntax));
}

/** The routers of `entryPoint` in match order. */
export function routerOrder(
  routers: Readonly<Record<string, OrderedRouter>>,
  entryPoint: string,
): string[] {
  const priority = new Map<string, number>();
  const names = Object.keys(routers).filter((n) => routers[n].entryPoints.includes(entryPoint));
  for (const n of names) priority.set(n, priorityOf(routers[n]));
  return names.sort((a, b) => priority.get(b)! - priority.get(a)! || a.localeCompare(b));
}
