//! The incident report (IM-8): a PDF with the administrator's main title, the subtitle
//! "Incident report", every textual field of a project, its comments, calls and the list of its
//! sequences with a thumbnail where the recording gave one. A report that could not be completed
//! says so on its first page, with every reason.
//!
//! Written with `pdf-writer` (four small crates; it writes PDF objects and nothing else) and the
//! PDF's built-in fonts: Courier for text, whose glyphs are all 600/1000 em wide, so lines wrap
//! exactly without font metrics, and Helvetica-Bold for headings. Text is WinAnsi-encoded: a
//! character outside it is printed as `?` and makes the report incomplete (named on page one).
//! Thumbnails are the recording's JPEGs embedded as they are (DCTDecode): nothing is decoded here;
//! `thumbnail_plan` says which key frame of the recording is a sequence's thumbnail.

use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str};

use crate::error::Error;
use crate::store::export::ExportPlan;

/// A4 in points.
const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 50.0;
const TEXT_SIZE: f32 = 10.0;
/// Courier's advance: 600/1000 em.
const CHAR_W: f32 = TEXT_SIZE * 0.6;
const LEADING: f32 = 13.0;
const HEADING_SIZE: f32 = 13.0;
const TITLE_SIZE: f32 = 20.0;
/// Thumbnails are drawn this wide (points); their height keeps the picture's aspect.
const THUMB_W: f32 = 160.0;
/// The most characters of one line of text.
const LINE_CHARS: usize = ((PAGE_W - 2.0 * MARGIN) / CHAR_W) as usize;

/// One sequence as the report lists it.
pub struct ReportSequence {
    /// The camera's name and id as the caller may show them.
    pub camera: String,
    pub start_wall_us: i64,
    pub end_wall_us: i64,
    /// A JPEG of the recording at the sequence's start; `Err` says why there is none when one
    /// was expected (the report is then incomplete); `Ok(None)` when the recording holds none.
    pub thumbnail: Result<Option<Vec<u8>>, String>,
    /// A fact printed under the sequence's line that does not make the report incomplete: its
    /// media is gone (the media store's retention, IM-10), or its camera is not the reader's to
    /// see (PR-11).
    pub note: Option<String>,
}

/// Everything the report prints, resolved to text by the caller (property names, values).
pub struct ReportInput {
    /// The administrator's main title (IM-8).
    pub title: String,
    pub project_id: i64,
    pub name: String,
    pub description: String,
    /// (label, value) lines: type, status, categories, data fields, creator and changer.
    pub fields: Vec<(String, String)>,
    /// (author, µs, text).
    pub comments: Vec<(String, i64, String)>,
    /// One line per call: who, when, which way, notes.
    pub calls: Vec<(String, String)>,
    pub sequences: Vec<ReportSequence>,
    pub generated_by: String,
    pub generated_wall_us: i64,
    /// Reasons the caller already knows the report is incomplete (a part it could not read).
    pub incomplete: Vec<String>,
}

/// The PDF and whether it is complete (the reasons are also printed on page one).
pub struct Report {
    pub pdf: Vec<u8>,
    pub incomplete: Vec<String>,
}

/// How much of a sequence is searched for its thumbnail's key frame (IM-8): a short window finds
/// the first key frame at or after the start without reading the frame tables of a long range
/// (a camera sends one at least every few seconds).
pub const THUMBNAIL_PLAN_US: i64 = 10_000_000;
/// How close the search for the first key frame after the start gets before it takes the plan:
/// frames are at least this far apart, so the plan from the bound found opens with that key
/// frame and not a later one.
const THUMBNAIL_SEARCH_RESOLUTION_US: i64 = 1_000;

/// The export plan whose first video sample is a sequence's thumbnail (IM-8): the first key frame
/// at or after `start_wall_us` when one starts before `end_wall_us` (within `THUMBNAIL_PLAN_US`);
/// else the key frame at or before the start, which the sequence's export opens with (the picture
/// shown at its first instant). `plan(from, to)` plans the camera's export of [from, to).
///
/// An export of [x, to) opens with the key frame at or before x (or the first frame after x where
/// nothing is recorded before), so its video frame count falls exactly where x passes the next key
/// frame: with `to` fixed, the count is a step function of x whose first step after the start is
/// the key frame wanted. It is found by bisection over the window (about 14 plans of at most
/// 10 s): the media store is reached only through its export plans.
pub fn thumbnail_plan(
    plan: impl Fn(i64, i64) -> Result<ExportPlan, Error>,
    start_wall_us: i64,
    end_wall_us: i64,
) -> Result<ExportPlan, Error> {
    let to = end_wall_us.min(start_wall_us.saturating_add(THUMBNAIL_PLAN_US));
    let first = plan(start_wall_us, to)?;
    // The recording starts after the start: its first frame is the first key frame after it.
    if first.start_wall_us > start_wall_us {
        return Ok(first);
    }
    // A key frame exactly at the start: a plan from just before it opens earlier (more frames),
    // or, with nothing recorded before, at the start itself.
    if let Some(before) = start_wall_us.checked_sub(1).and_then(|b| plan(b, to).ok()) {
        if before.video_frames > first.video_frames || before.start_wall_us >= start_wall_us {
            return Ok(first);
        }
    }
    let frames = |from: i64| plan(from, to).map(|p| p.video_frames).unwrap_or(usize::MAX);
    let (mut lo, mut hi) = (start_wall_us, to - 1);
    if hi <= lo || frames(hi) >= first.video_frames {
        // No key frame after the start inside the window: the one at or before it.
        return Ok(first);
    }
    // Invariant: a plan from `lo` opens with the key frame before the start, one from `hi` with a
    // later key frame.
    while hi - lo > THUMBNAIL_SEARCH_RESOLUTION_US {
        let mid = lo + (hi - lo) / 2;
        if frames(mid) < first.video_frames {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    // The window changed under the search (retention): the export's own key frame.
    Ok(plan(hi, to).unwrap_or(first))
}

/// `µs` as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(us: i64) -> String {
    match jiff::Timestamp::from_microsecond(us) {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => format!("{us} µs"),
    }
}

/// WinAnsi bytes for `s`, and whether every character had one.
fn win_ansi(s: &str) -> (Vec<u8>, bool) {
    let mut all = true;
    let out = s
        .chars()
        .map(|c| match c {
            ' '..='~' => c as u8,
            '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '€' => 0x80,
            '…' => 0x85,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            // Line ends never reach a line (`wrap` splits on them); the completeness check reads
            // whole texts, where they are not missing characters (review D finding 7).
            '\t' | '\r' | '\n' => b' ',
            _ => {
                all = false;
                b'?'
            }
        })
        .collect();
    (out, all)
}

/// Lines of at most `width` characters: words wrapped, words longer than a line cut. Windows
/// (`\r\n`) and old Mac (`\r`) line ends are line ends too, so a comment typed on Windows neither
/// prints `?` nor makes the report call itself incomplete (review D finding 7).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        for word in para.split(' ') {
            let mut word: Vec<char> = word.chars().collect();
            while word.len() > width {
                if !line.is_empty() {
                    out.push(std::mem::take(&mut line));
                }
                out.push(word.drain(..width).collect());
            }
            let word: String = word.into_iter().collect();
            let n = line.chars().count();
            if n > 0 && n + 1 + word.chars().count() > width {
                out.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&word);
        }
        out.push(line);
    }
    out
}

/// A JPEG's size and number of components, from its first SOF marker.
fn jpeg_info(jpeg: &[u8]) -> Option<(u16, u16, u8)> {
    if jpeg.get(..2)? != [0xff, 0xd8] {
        return None;
    }
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        if jpeg[i] != 0xff {
            return None;
        }
        let marker = jpeg[i + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
        if (0xc0..=0xcf).contains(&marker) && !matches!(marker, 0xc4 | 0xc8 | 0xcc) {
            let f = jpeg.get(i + 4..i + 10)?;
            return Some((u16::from_be_bytes([f[3], f[4]]), u16::from_be_bytes([f[1], f[2]]), f[5]));
        }
        i += 2 + len;
    }
    None
}

/// A thumbnail that can be embedded: the JPEG, its size and number of components.
struct Thumb {
    jpeg: Vec<u8>,
    width: u16,
    height: u16,
    components: u8,
}

/// Lays pages out top to bottom.
struct Writer {
    pages: Vec<Content>,
    /// Each page's images: (resource name, object).
    page_images: Vec<Vec<(String, Ref)>>,
    y: f32,
}

impl Writer {
    fn new() -> Writer {
        let mut w = Writer { pages: Vec::new(), page_images: Vec::new(), y: 0.0 };
        w.new_page();
        w
    }

    fn new_page(&mut self) {
        self.pages.push(Content::new());
        self.page_images.push(Vec::new());
        self.y = PAGE_H - MARGIN;
    }

    fn room(&mut self, height: f32) {
        if self.y - height < MARGIN {
            self.new_page();
        }
    }

    fn text_at(&mut self, font: &[u8], size: f32, x: f32, text: &str) {
        let (bytes, _) = win_ansi(text);
        let y = self.y;
        let c = self.pages.last_mut().expect("a page");
        c.begin_text();
        c.set_font(Name(font), size);
        c.next_line(x, y);
        c.show(Str(&bytes));
        c.end_text();
    }

    fn title(&mut self, text: &str, size: f32) {
        for line in wrap(text, ((PAGE_W - 2.0 * MARGIN) / (size * 0.6)) as usize) {
            self.room(size * 1.3);
            self.y -= size;
            self.text_at(b"F2", size, MARGIN, &line);
            self.y -= size * 0.3;
        }
    }

    fn heading(&mut self, text: &str) {
        self.y -= LEADING * 0.6;
        self.room(HEADING_SIZE * 1.4 + LEADING);
        self.title(text, HEADING_SIZE);
    }

    fn paragraph(&mut self, text: &str) {
        self.paragraph_indented(text, 0);
    }

    fn paragraph_indented(&mut self, text: &str, indent: usize) {
        let pad = " ".repeat(indent);
        for line in wrap(text, LINE_CHARS - indent) {
            self.room(LEADING);
            self.y -= LEADING;
            self.text_at(b"F1", TEXT_SIZE, MARGIN, &format!("{pad}{line}"));
        }
    }

    fn image(&mut self, name: String, id: Ref, w: u16, h: u16) {
        let height = THUMB_W * f32::from(h) / f32::from(w.max(1));
        self.room(height + 4.0);
        self.y -= height + 4.0;
        let y = self.y;
        let c = self.pages.last_mut().expect("a page");
        c.save_state();
        c.transform([THUMB_W, 0.0, 0.0, height, MARGIN + 4.0 * CHAR_W, y]);
        c.x_object(Name(name.as_bytes()));
        c.restore_state();
        self.page_images.last_mut().expect("a page").push((name, id));
    }
}

/// Renders the report. Never fails: what cannot be shown is named among `incomplete`.
pub fn render(input: &ReportInput) -> Report {
    let mut incomplete = input.incomplete.clone();
    // The thumbnails first, so page one can say whether any is missing.
    let mut thumbs: Vec<Option<Thumb>> = Vec::new();
    for (i, s) in input.sequences.iter().enumerate() {
        thumbs.push(match &s.thumbnail {
            Ok(Some(jpeg)) => match jpeg_info(jpeg) {
                Some((width, height, components)) if width > 0 && height > 0 && matches!(components, 1 | 3) => {
                    Some(Thumb { jpeg: jpeg.clone(), width, height, components })
                }
                _ => {
                    incomplete.push(format!("sequence {}: its thumbnail is not a JPEG this report can embed", i + 1));
                    None
                }
            },
            Ok(None) => None,
            Err(why) => {
                incomplete.push(format!("sequence {}: no thumbnail: {why}", i + 1));
                None
            }
        });
    }
    // Characters outside WinAnsi are known only once written; a first pass finds them.
    let all_text = std::iter::once(input.title.as_str())
        .chain([input.name.as_str(), input.description.as_str(), input.generated_by.as_str()])
        .chain(input.fields.iter().flat_map(|(a, b)| [a.as_str(), b.as_str()]))
        .chain(input.comments.iter().flat_map(|(a, _, t)| [a.as_str(), t.as_str()]))
        .chain(input.calls.iter().flat_map(|(a, b)| [a.as_str(), b.as_str()]))
        .chain(input.sequences.iter().flat_map(|s| [s.camera.as_str(), s.note.as_deref().unwrap_or_default()]));
    if all_text.into_iter().any(|t| !win_ansi(t).1) {
        incomplete.push("some characters cannot be shown in the report's font and are printed as \"?\"".to_owned());
    }

    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let courier = Ref::new(3);
    let helvetica = Ref::new(4);
    let mut next = 5;
    let mut alloc = || {
        let r = Ref::new(next);
        next += 1;
        r
    };

    let mut w = Writer::new();
    w.title(&input.title, TITLE_SIZE);
    w.title("Incident report", HEADING_SIZE + 2.0);
    w.y -= 4.0;
    if !incomplete.is_empty() {
        w.heading("INCOMPLETE REPORT");
        w.paragraph("This report could not be completed:");
        for why in &incomplete {
            w.paragraph_indented(&format!("- {why}"), 2);
        }
    }
    w.heading(&format!("Project {}: {}", input.project_id, input.name));
    if !input.description.is_empty() {
        w.paragraph(&input.description);
    }
    w.heading("Details");
    for (label, value) in &input.fields {
        w.paragraph(&format!("{label}: {value}"));
    }
    w.heading(&format!("Comments ({})", input.comments.len()));
    for (author, at, text) in &input.comments {
        w.paragraph(&format!("{} by {author}:", utc(*at)));
        w.paragraph_indented(text, 2);
    }
    w.heading(&format!("Calls ({})", input.calls.len()));
    for (head, notes) in &input.calls {
        w.paragraph(head);
        if !notes.is_empty() {
            w.paragraph_indented(notes, 2);
        }
    }
    w.heading(&format!("Sequences ({})", input.sequences.len()));
    let mut images = Vec::new();
    for (i, (s, thumb)) in input.sequences.iter().zip(&thumbs).enumerate() {
        w.paragraph(&format!("{}. {}: {} to {}", i + 1, s.camera, utc(s.start_wall_us), utc(s.end_wall_us)));
        if let Some(note) = &s.note {
            w.paragraph_indented(note, 4);
        }
        if let Some(t) = thumb {
            let id = alloc();
            w.image(format!("Im{}", i + 1), id, t.width, t.height);
            images.push((id, t));
        }
    }
    w.y -= LEADING;
    w.paragraph(&format!("Generated {} by {}.", utc(input.generated_wall_us), input.generated_by));

    let page_ids: Vec<(Ref, Ref)> = w.pages.iter().map(|_| (alloc(), alloc())).collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids(page_ids.iter().map(|(p, _)| *p)).count(page_ids.len() as i32);
    pdf.type1_font(courier).base_font(Name(b"Courier")).encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(helvetica).base_font(Name(b"Helvetica-Bold")).encoding_predefined(Name(b"WinAnsiEncoding"));
    for (id, t) in &images {
        let mut image = pdf.image_xobject(*id, &t.jpeg);
        image.filter(Filter::DctDecode);
        image.width(i32::from(t.width));
        image.height(i32::from(t.height));
        if t.components == 1 {
            image.color_space().device_gray();
        } else {
            image.color_space().device_rgb();
        }
        image.bits_per_component(8);
        image.finish();
    }
    let number_of_pages = w.pages.len();
    for (n, ((content, imgs), (page_id, content_id))) in
        w.pages.into_iter().zip(w.page_images).zip(&page_ids).enumerate()
    {
        let mut content = content;
        let (footer, _) = win_ansi(&format!("{} - page {} of {number_of_pages}", input.title, n + 1));
        content.begin_text();
        content.set_font(Name(b"F1"), 8.0);
        content.next_line(MARGIN, MARGIN / 2.0);
        content.show(Str(&footer));
        content.end_text();
        pdf.stream(*content_id, &content.finish());
        let mut page = pdf.page(*page_id);
        page.parent(tree).media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H)).contents(*content_id);
        let mut resources = page.resources();
        resources.fonts().pair(Name(b"F1"), courier).pair(Name(b"F2"), helvetica);
        if !imgs.is_empty() {
            let mut x = resources.x_objects();
            for (name, id) in &imgs {
                x.pair(Name(name.as_bytes()), *id);
            }
        }
    }
    Report { pdf: pdf.finish(), incomplete }
}

#[cfg(test)]
mod tests;
