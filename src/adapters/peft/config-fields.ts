/** Typed reads of adapter_config.json fields, each wrong type an ADAPTER_INVALID_CONFIG naming the field. */
import { createError } from '../../observability/errors.ts';

export type Json = Record<string, unknown>;

/** A config value as messages show it: JSON, cut at 120 characters (a config may hold megabytes). */
export function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}

/** Absent or null fields read as undefined / null / empty; present ones must have the right type. */
export class FieldReader {
  constructor(
    private readonly json: Json,
    private readonly file: string,
  ) {}

  private invalid(field: string, expected: string): never {
    throw createError('ADAPTER_INVALID_CONFIG', {
      file: this.file,
      field,
      problem: `${shown(this.json[field])} must be ${expected}`,
    });
  }

  positiveInt(field: string): number | undefined {
    const v = this.json[field];
    if (v === undefined || v === null) return undefined;
    if (!Number.isInteger(v) || (v as number) <= 0) this.invalid(field, 'a positive integer');
    return v as number;
  }

  finiteNumber(field: string): number | undefined {
    const v = this.json[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.invalid(field, 'a number');
    return v;
  }

  bool(field: string): boolean | undefined {
    const v = this.json[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') this.invalid(field, 'true or false');
    return v;
  }

  stringOrNull(field: string): string | null {
    const v = this.json[field];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') this.invalid(field, 'a string');
    return v;
  }

  stringsOrString(field: string): string[] | string | null {
    const v = this.json[field];
    if (v === undefined || v === null) return null;
    if (typeof v === 'string') return v;
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) {
      this.invalid(field, 'a list of module names or a regex string');
    }
    return v as string[];
  }

  layerIndexes(field: string): number[] | number | null {
    const v = this.json[field];
    if (v === undefined || v === null) return null;
    if (Number.isInteger(v) && (v as number) >= 0) return v as number;
    if (!Array.isArray(v) || !v.every((i) => Number.isInteger(i) && i >= 0)) {
      this.invalid(field, 'a layer index or a list of layer indexes');
    }
    return v as number[];
  }

  patternMap(field: string, integer: boolean): [string, number][] {
    const v = this.json[field];
    if (v === undefined || v === null) return [];
    if (typeof v !== 'object' || Array.isArray(v)) this.invalid(field, 'an object of pattern → value');
    const entries = Object.entries(v as Json);
    for (const [key, value] of entries) {
      const ok = integer
        ? Number.isInteger(value) && (value as number) > 0
        : typeof value === 'number' && Number.isFinite(value);
      if (!ok) {
        throw createError('ADAPTER_INVALID_CONFIG', {
          file: this.file,
          field: `${field}[${shown(key)}]`,
          problem: `${shown(value)} must be ${integer ? 'a positive integer rank' : 'a number'}`,
        });
      }
    }
    return entries as [string, number][];
  }
}
