/** Third-party catalog: common applications and their package ids per manager, so one product has one patch id everywhere. */
export interface CatalogProduct {
  key: string;
  name: string;
  vendor: string;
  ids: { winget?: string[]; brew?: string[]; apt?: string[]; dnf?: string[] };
}

export const THIRD_PARTY_CATALOG: readonly CatalogProduct[] = [
  {
    key: 'google-chrome',
    name: 'Google Chrome',
    vendor: 'Google',
    ids: {
      winget: ['Google.Chrome'],
      brew: ['google-chrome'],
      apt: ['google-chrome-stable'],
      dnf: ['google-chrome-stable'],
    },
  },
  {
    key: 'mozilla-firefox',
    name: 'Mozilla Firefox',
    vendor: 'Mozilla',
    ids: {
      winget: ['Mozilla.Firefox', 'Mozilla.Firefox.ESR'],
      brew: ['firefox'],
      apt: ['firefox', 'firefox-esr'],
      dnf: ['firefox'],
    },
  },
  {
    key: 'microsoft-edge',
    name: 'Microsoft Edge',
    vendor: 'Microsoft',
    ids: { winget: ['Microsoft.Edge'], brew: ['microsoft-edge'], apt: ['microsoft-edge-stable'] },
  },
  {
    key: 'java-temurin',
    name: 'Eclipse Temurin JDK',
    vendor: 'Eclipse Adoptium',
    ids: {
      winget: ['EclipseAdoptium.Temurin.21.JDK', 'EclipseAdoptium.Temurin.17.JDK'],
      brew: ['temurin'],
      apt: ['temurin-21-jdk', 'temurin-17-jdk'],
    },
  },
  {
    key: 'oracle-java',
    name: 'Oracle Java',
    vendor: 'Oracle',
    ids: { winget: ['Oracle.JavaRuntimeEnvironment', 'Oracle.JDK.21'], brew: ['oracle-jdk'] },
  },
  {
    key: 'adobe-acrobat-reader',
    name: 'Adobe Acrobat Reader',
    vendor: 'Adobe',
    ids: { winget: ['Adobe.Acrobat.Reader.64-bit', 'Adobe.Acrobat.Reader.32-bit'], brew: ['adobe-acrobat-reader'] },
  },
  {
    key: '7-zip',
    name: '7-Zip',
    vendor: 'Igor Pavlov',
    ids: { winget: ['7zip.7zip'], brew: ['sevenzip'], apt: ['7zip', 'p7zip-full'] },
  },
  { key: 'zoom', name: 'Zoom Workplace', vendor: 'Zoom', ids: { winget: ['Zoom.Zoom'], brew: ['zoom'] } },
  {
    key: 'vscode',
    name: 'Visual Studio Code',
    vendor: 'Microsoft',
    ids: { winget: ['Microsoft.VisualStudioCode'], brew: ['visual-studio-code'], apt: ['code'], dnf: ['code'] },
  },
  { key: 'notepad-plus-plus', name: 'Notepad++', vendor: 'Notepad++', ids: { winget: ['Notepad++.Notepad++'] } },
  {
    key: 'vlc',
    name: 'VLC media player',
    vendor: 'VideoLAN',
    ids: { winget: ['VideoLAN.VLC'], brew: ['vlc'], apt: ['vlc'], dnf: ['vlc'] },
  },
  { key: 'git', name: 'Git', vendor: 'Git', ids: { winget: ['Git.Git'], brew: ['git'], apt: ['git'], dnf: ['git'] } },
  {
    key: 'putty',
    name: 'PuTTY',
    vendor: 'Simon Tatham',
    ids: { winget: ['PuTTY.PuTTY'], brew: ['putty'], apt: ['putty'] },
  },
  { key: 'slack', name: 'Slack', vendor: 'Slack', ids: { winget: ['SlackTechnologies.Slack'], brew: ['slack'] } },
  {
    key: 'microsoft-teams',
    name: 'Microsoft Teams',
    vendor: 'Microsoft',
    ids: { winget: ['Microsoft.Teams'], brew: ['microsoft-teams'] },
  },
  { key: 'microsoft-365-apps', name: 'Microsoft 365 Apps', vendor: 'Microsoft', ids: { winget: ['Microsoft.Office'] } },
  { key: 'signal', name: 'Signal', vendor: 'Signal', ids: { winget: ['OpenWhisperSystems.Signal'], brew: ['signal'] } },
  { key: 'postman', name: 'Postman', vendor: 'Postman', ids: { winget: ['Postman.Postman'], brew: ['postman'] } },
  {
    key: 'nodejs',
    name: 'Node.js',
    vendor: 'OpenJS Foundation',
    ids: { winget: ['OpenJS.NodeJS', 'OpenJS.NodeJS.LTS'], brew: ['node'] },
  },
  { key: 'openssl', name: 'OpenSSL', vendor: 'OpenSSL', ids: { brew: ['openssl@3'] } },
];

const index = new Map<string, CatalogProduct>();
for (const p of THIRD_PARTY_CATALOG)
  for (const [manager, ids] of Object.entries(p.ids))
    for (const id of ids ?? []) index.set(`${manager}\u0000${id.toLowerCase()}`, p);

/** The catalog product a manager's package id belongs to, or undefined. */
export function productForPackage(manager: string, id: string): CatalogProduct | undefined {
  return index.get(`${manager}\u0000${id.toLowerCase()}`);
}
