// National Provider Identifier: ten digits whose check digit is the Luhn digit of "80840" + the first nine (CMS standard).
import luhn from 'fast-luhn';

export function isValidNpi(npi: string): boolean {
  return /^\d{10}$/.test(npi) && luhn(`80840${npi}`);
}
