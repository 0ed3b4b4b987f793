import { inflateSync } from 'node:zlib';

/**
 * Text and images of a PDF written by pdfkit, read without a PDF library: inflate every content stream
 * and decode the hex strings of its TJ/Tj operators (standard fonts are WinAnsi-encoded, one byte a glyph).
 */
export function pdfContent(pdf: Buffer): { pages: number; text: string; images: number; pngImages: number } {
  const src = pdf.toString('latin1');
  const pages = (src.match(/\/Type \/Page\b/g) ?? []).length;
  const images = (src.match(/\/Subtype \/Image/g) ?? []).length;
  const pngImages = (src.match(/\/Subtype \/Image[\s\S]{0,400}?\/Filter \/FlateDecode/g) ?? []).length;
  const texts: string[] = [];
  const re = /(?<!end)stream\r?\n/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(src))) {
    const start = m.index + m[0].length;
    const end = src.indexOf('endstream', start);
    if (end < 0) break;
    const dict = src.slice(src.lastIndexOf('obj', m.index), m.index);
    re.lastIndex = end + 'endstream'.length;
    if (/\/Subtype \/Image|\/Type \/XObject|\/FontFile/.test(dict)) continue;
    const raw = pdf.subarray(start, end);
    let body: string;
    try {
      body = inflateSync(raw).toString('latin1');
    } catch {
      body = raw.toString('latin1');
    }
    for (const op of body.matchAll(/\[((?:<[0-9a-fA-F]*>|[^\]<])*)\]\s*TJ|<([0-9a-fA-F]*)>\s*Tj/g)) {
      const parts = op[1] !== undefined ? [...op[1].matchAll(/<([0-9a-fA-F]*)>/g)].map((x) => x[1]!) : [op[2]!];
      texts.push(parts.map((h) => Buffer.from(h, 'hex').toString('latin1')).join(''));
    }
  }
  return { pages, text: texts.join('\n'), images, pngImages };
}
