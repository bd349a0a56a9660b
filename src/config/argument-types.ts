/**
 * What each manifest argument type accepts. One table, used both to check a manifest's
 * `default:` values when it is read and to check every call's arguments.
 */
import type { ArgumentType } from "./types.js";

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** The check for each type; `undefined` for `any`, which accepts everything. */
export const TYPE_CHECKS: Readonly<
  Record<ArgumentType, ((value: unknown) => boolean) | undefined>
> = {
  int: (v) => Number.isInteger(v),
  float: (v) => typeof v === "number",
  number: (v) => typeof v === "number",
  str: (v) => typeof v === "string",
  string: (v) => typeof v === "string",
  bool: (v) => typeof v === "boolean",
  boolean: (v) => typeof v === "boolean",
  dict: isPlainObject,
  object: isPlainObject,
  list: Array.isArray,
  array: Array.isArray,
  any: undefined,
};

export const ARGUMENT_TYPES = Object.keys(TYPE_CHECKS) as ArgumentType[];

/** Whether `value` fits `type`; false for a type name that is not one. */
export function matchesType(value: unknown, type: ArgumentType): boolean {
  if (!Object.hasOwn(TYPE_CHECKS, type)) return false;
  const check = TYPE_CHECKS[type];
  return check === undefined || check(value);
}
