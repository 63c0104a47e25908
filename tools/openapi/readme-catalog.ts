// The README's catalog of webhook events, written from the document's webhooks section (which the
// event catalog writes), so the README cannot name a type the service does not send or miss one.
type Json = Record<string, any>;

export const catalogStart = '<!-- generated from the webhooks section of openapi/openapi.json by npm run openapi:write -->';
export const catalogEnd = '<!-- /generated -->';

export function renderWebhookCatalog(document: Json): string {
  const rows = Object.entries(document.webhooks as Record<string, Json>).map(([type, { post }]) => {
    const formats = Object.keys(post.requestBody.content).map((mediaType) => `\`${mediaType}\``).join(', ');
    return `| \`${type}\` | ${post.summary} | ${post['x-audience']} | \`${post['x-data-resource']}\` | ${formats} |`;
  });
  return ['| event | when | to | `data.resource` | body |', '|---|---|---|---|---|', ...rows].join('\n');
}

/** The README with its catalog block rewritten. */
export function withWebhookCatalog(readme: string, document: Json): string {
  const start = readme.indexOf(catalogStart);
  const end = readme.indexOf(catalogEnd);
  if (start < 0 || end < start) throw new Error('README.md has no webhook catalog markers');
  return `${readme.slice(0, start + catalogStart.length)}\n${renderWebhookCatalog(document)}\n${readme.slice(end)}`;
}
