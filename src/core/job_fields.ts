/**
 * How a job field is described, and what is derived from a list of such descriptions. The list
 * itself is {@link JOB_FIELDS} in job.ts; from it come the `Job` and `NewJob` types, both stores'
 * column lists and insert rows, the columns a state change may write, the JSON output and the
 * enqueue validation (see docs/architecture.md, "How to add...", "A job field").
 */

/**
 * How both stores keep a field: `text`; `integer`; `real` (double precision); `time`, epoch
 * milliseconds in an integer column, ISO-8601 in JSON output.
 */
export type FieldType = "text" | "integer" | "real" | "time";

/** A user's job spec: a JSON object, not yet validated. */
export type JobSpec = Readonly<Record<string, unknown>>;

/** What a field's enqueue parser may use besides the spec. */
export interface JobDefaults {
  /** config `max_retries`. */
  max_retries: number;
  /** The enqueue time (epoch ms). */
  now: number;
  /**
   * The directory of the process that enqueued the job (absolute): the default `cwd`, and what a
   * relative `cwd` is resolved against. Absent: no default (`cwd` null unless given absolute).
   */
  cwd?: string | null;
}

/** A field's value at insert when the user does not set it: the enqueue time. */
export const NOW: unique symbol = Symbol("now");

export interface FieldDef {
  readonly type: FieldType;
  /** The field may be null (SQL NULL); it is null at insert unless `initial` says otherwise. */
  readonly nullable?: true;
  /** The only values a text field may hold (its TypeScript type is their union). */
  readonly values?: readonly string[];
  /**
   * Set by the user at enqueue. `parse` reads the spec fields named in `keys` (default: the
   * field's own name), validates them and fills in the default; it throws InvalidInput with a
   * message naming the field. `required` fields are checked first, then the others in list order.
   */
  readonly enqueue?: {
    readonly keys?: readonly string[];
    readonly required?: true;
    readonly parse: (spec: JobSpec, defaults: JobDefaults) => unknown;
  };
  /** Otherwise its value in a new job's row: a constant, or {@link NOW}. */
  readonly initial?: string | number | typeof NOW;
  /** A state change may write it (`StateChange.set`). */
  readonly change?: true;
  /** Left out of the JSON output (`--json`, the dashboard API). Default: included. */
  readonly json?: false;
}

type BaseValue<F> = F extends { values: readonly (infer V)[] } ? V
  : F extends { type: "text" } ? string
  : number;
/** The TypeScript type of a field's value. */
export type FieldValue<F> = BaseValue<F> | (F extends { nullable: true } ? null : never);
/** The row of a field list: one property per field, in list order. */
export type RowOf<L> = { -readonly [K in keyof L]: FieldValue<L[K]> };
/** The fields a user sets at enqueue. */
export type EnqueueKey<L> = {
  [K in keyof L]: L[K] extends { enqueue: object } ? K : never;
}[keyof L];
/** The fields that may be null. */
export type NullableKey<L> = {
  [K in keyof L]: L[K] extends { nullable: true } ? K : never;
}[keyof L];
/** A new row: the fields a user sets at enqueue. */
export type NewRowOf<L> = Pick<RowOf<L>, EnqueueKey<L>>;
/**
 * A new row to insert: those that may be null optional (left out = null), so that code building
 * one by hand (tests, benchmarks) need not name every nullable field.
 */
export type InsertRowOf<L> =
  & Pick<RowOf<L>, Exclude<EnqueueKey<L>, NullableKey<L>>>
  & Partial<Pick<RowOf<L>, EnqueueKey<L> & NullableKey<L>>>;
/** The fields a state change may write. */
export type ChangeKey<L> = { [K in keyof L]: L[K] extends { change: true } ? K : never }[keyof L];
/** The spec fields accepted at enqueue. */
export type SpecKey<L> = {
  [K in keyof L]: L[K] extends { enqueue: { keys: readonly (infer S)[] } } ? S
    : L[K] extends { enqueue: object } ? K
    : never;
}[keyof L];

/**
 * True when every field's parser returns, and every constant `initial` is, a value of the field's
 * type; false (a compile error where it is asserted) otherwise.
 */
export type FieldsConsistent<L> = [
  {
    [K in keyof L]: L[K] extends { enqueue: { parse: (...a: never[]) => infer R } }
      ? [R] extends [FieldValue<L[K]>] ? true : false
      : L[K] extends { initial: infer I } ? [I] extends [FieldValue<L[K]> | typeof NOW] ? true
        : false
      : L[K] extends { nullable: true } ? true
      : false; // neither set by the user, nor an initial value, nor null: no value at insert
  }[keyof L],
] extends [true] ? true : false;

/** Where a column's value comes from when a job is inserted. */
export type InsertSource =
  | { readonly from: "spec" }
  | { readonly from: "now" }
  | { readonly from: "constant"; readonly value: string | number | null };

export function insertSource(f: FieldDef): InsertSource {
  if (f.enqueue) return { from: "spec" };
  if (f.initial === NOW) return { from: "now" };
  return { from: "constant", value: f.initial ?? null };
}

/** The names of `fields` whose description matches `test`, in list order. */
export function fieldNames<L extends Record<string, FieldDef>, K extends keyof L & string>(
  fields: L,
  test: (f: FieldDef) => boolean,
): readonly K[] {
  return (Object.keys(fields) as K[]).filter((k) => test(fields[k]));
}

/**
 * The parser of a job spec's fields: runs each enqueue parser of `fields` (required ones first,
 * then list order: the first problem found is the one reported) and returns their values, keyed
 * in list order.
 */
export function fieldsParser(
  fields: Readonly<Record<string, FieldDef>>,
): (spec: JobSpec, defaults: JobDefaults) => Record<string, unknown> {
  const settable = Object.entries(fields).filter(([, f]) => f.enqueue).map(([name, f]) => ({
    name,
    parse: f.enqueue!.parse,
    required: f.enqueue!.required === true,
  }));
  const checks = [...settable.filter((f) => f.required), ...settable.filter((f) => !f.required)];
  // Every result starts as a copy of this object, so that all have its keys (in list order) and
  // one compact shape: through JSON.parse, V8 gives it exactly room for them in the object.
  const shape = JSON.parse(JSON.stringify(Object.fromEntries(settable.map((f) => [f.name, null]))));
  return (spec, defaults) => {
    const out: Record<string, unknown> = { ...shape };
    for (const c of checks) out[c.name] = c.parse(spec, defaults);
    return out;
  };
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** The writer of a row as a JSON object: its `json` fields in list order, times as ISO-8601. */
export function jsonWriter(
  fields: Readonly<Record<string, FieldDef>>,
): (row: Readonly<Record<string, unknown>>) => Record<string, unknown> {
  const shown = Object.entries(fields).filter(([, f]) => f.json !== false)
    .map(([name, f]) => ({ name, time: f.type === "time" }));
  return (row) => {
    const out: Record<string, unknown> = {};
    for (const { name, time } of shown) {
      out[name] = time ? iso(row[name] as number | null) : row[name];
    }
    return out;
  };
}
