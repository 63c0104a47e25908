// National Provider Identifier: ten digits whose check digit is the Luhn digit of "80840" + the first nine (CMS standard).
import luhn from 'fast-luhn';
import type { FieldProblem } from './errors.js';
import { npiPattern } from './vocabulary.js';

export function isValidNpi(npi: string): boolean {
  return npiPattern.test(npi) && luhn(`80840${npi}`);
}

/** The NPI rule of a body: required of `holder` (e.g. 'a physician') when it is one, refused otherwise. */
export function npiProblem(npi: string | undefined, holder: string, isHolder: boolean): FieldProblem | undefined {
  if (!isHolder) return npi === undefined ? undefined : { field: 'npi', message: `is only taken for ${holder}` };
  if (!npi) return { field: 'npi', message: `is required for ${holder}` };
  if (!isValidNpi(npi)) return { field: 'npi', message: 'fails the NPI check digit (Luhn)' };
  return undefined;
}
