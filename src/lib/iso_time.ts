/**
 * `new Date(ms).toISOString()` by arithmetic. The sidecar logs a time on every line, and V8's
 * `toISOString` touches about 1.4 MiB of the runtime's date code the first time it runs (measured
 * with VmHWM); this touches none. Outside years 0 to 9999, and for NaN, it is `toISOString` itself.
 */
export function isoTime(ms: number): string {
  if (!Number.isFinite(ms)) return new Date(ms).toISOString();
  const t = Math.trunc(ms);
  const days = Math.floor(t / 86_400_000);
  const inDay = t - days * 86_400_000;
  // Howard Hinnant's civil_from_days: the proleptic Gregorian date of a day count since 1970-01-01.
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  if (year < 0 || year > 9999) return new Date(ms).toISOString();
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${pad(year, 4)}-${pad(month)}-${pad(day)}T${pad(Math.floor(inDay / 3_600_000))}:${
    pad(Math.floor(inDay / 60_000) % 60)
  }:${pad(Math.floor(inDay / 1000) % 60)}.${pad(inDay % 1000, 3)}Z`;
}
