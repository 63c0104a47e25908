// Calendar dates as the API and the database's date columns write them: YYYY-MM-DD, in UTC.
const dayMs = 86_400_000;

/** The UTC calendar day of a moment. */
export const isoDay = (time: Date): string => time.toISOString().slice(0, 10);

export const todayUtc = (): string => isoDay(new Date());

/** The day `days` after (or, negative, before) a YYYY-MM-DD date. */
export const addDays = (date: string, days: number): string => isoDay(new Date(Date.parse(`${date}T00:00:00Z`) + days * dayMs));
