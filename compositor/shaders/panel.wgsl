// The whole frame in one pass: the distortion mesh covers each eye's half of the panel,
// and every panel pixel composes the layers where the lens sends each colour channel.
// One draw per layer, back to front: red, green and blue each take the view direction
// of their own lens-corrected position (chromatic aberration correction), rotate it into
// the layer's space (projection: the app's render pose, the timewarp; quad: the quad's
// plane; ...) and sample the layer's sub-image there. Nothing is drawn outside the lens
// model's valid radius or outside the eye's field of view, where the panel stays black.
// Output is premultiplied and blends per channel through dual-source blending:
// dst = colour + dst * (1 - that channel's alpha).

enable dual_source_blending;

struct Layer {
    eye_tan: vec4<f32>, // tan of the eye's field of view: left, right, up, down edges
    rot0: vec4<f32>,    // rows of the rotation display-eye -> layer; .w: kind (0 projection,
                        // 1 quad, 2 cylinder, 3 equirect by angles, 4 equirect by
                        // scale and bias, 5 cube)
    rot1: vec4<f32>,    // .w: flags (1: use source alpha, 2: unpremultiplied)
    rot2: vec4<f32>,    // .w: array layer (cube: of its +X face)
    param: vec4<f32>,   // projection: the layer's tangents; others: the eye's position in
                        // layer space (.w: equirect by scale and bias: the v bias)
    rect: vec4<f32>,    // sub-image: u0, v0, u1, v1
    size: vec4<f32>,    // quad: half width, half height; cylinder: radius, central angle,
                        // aspect ratio; equirect: radius, central horizontal angle, upper
                        // and lower vertical angles; equirect by scale and bias: radius,
                        // u scale, v scale, u bias
    eye: vec4<f32>,     // .x: r² cutoff of this eye's lens
};

// Where a ray from `o` along `d` leaves a sphere (`cyl` false) or the cylinder around Y
// (`cyl` true) of radius `rad` around the origin, from the inside; -1 if it never does.
fn exit_distance(o: vec3<f32>, d: vec3<f32>, rad: f32, cyl: bool) -> f32 {
    var oo = o;
    var dd = d;
    if cyl {
        oo = vec3<f32>(o.x, 0.0, o.z);
        dd = vec3<f32>(d.x, 0.0, d.z);
    }
    let a = dot(dd, dd);
    let b = 2.0 * dot(oo, dd);
    let c = dot(oo, oo) - rad * rad;
    let disc = b * b - 4.0 * a * c;
    if a < 1e-12 || disc < 0.0 {
        return -1.0;
    }
    return (-b + sqrt(disc)) / (2.0 * a);
}

var<push_constant> pc: Layer;
@group(0) @binding(0) var tex: texture_2d_array<f32>;
@group(0) @binding(1) var samp: sampler;

struct VsIn {
    @location(0) pos: vec2<f32>,
    @location(1) uv_r: vec2<f32>,
    @location(2) uv_g: vec2<f32>,
    @location(3) uv_b: vec2<f32>,
    @location(4) p: vec2<f32>,
};

struct VsOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) uv_r: vec2<f32>,
    @location(1) uv_g: vec2<f32>,
    @location(2) uv_b: vec2<f32>,
    @location(3) p: vec2<f32>,
};

@vertex
fn vs_main(v: VsIn) -> VsOut {
    var o: VsOut;
    o.pos = vec4<f32>(v.pos, 0.0, 1.0);
    o.uv_r = v.uv_r;
    o.uv_g = v.uv_g;
    o.uv_b = v.uv_b;
    o.p = v.p;
    return o;
}

// The direction of eye-image position `e` (0..1 across the eye's field of view),
// rotated into the layer's space.
fn ray(e: vec2<f32>) -> vec3<f32> {
    let d = vec3<f32>(mix(pc.eye_tan.x, pc.eye_tan.y, e.x), mix(pc.eye_tan.z, pc.eye_tan.w, e.y), -1.0);
    return vec3<f32>(dot(pc.rot0.xyz, d), dot(pc.rot1.xyz, d), dot(pc.rot2.xyz, d));
}

fn outside(uv: vec2<f32>) -> bool {
    return uv.x < 0.0 || uv.y < 0.0 || uv.x > 1.0 || uv.y > 1.0;
}

// The layer's premultiplied colour at `uv` of its sub-image (array layer `face` past
// its own); transparent outside it.
fn sample_at(uv: vec2<f32>, face: i32) -> vec4<f32> {
    if outside(uv) {
        return vec4<f32>(0.0, 0.0, 0.0, 0.0);
    }
    let flags = u32(pc.rot1.w);
    let st = mix(pc.rect.xy, pc.rect.zw, uv);
    var c = textureSampleLevel(tex, samp, st, i32(pc.rot2.w) + face, 0.0);
    if (flags & 1u) == 0u {
        c.a = 1.0;
    }
    if (flags & 2u) != 0u {
        c = vec4<f32>(c.rgb * c.a, c.a);
    }
    return c;
}

// One function per kind of layer. `e`: the eye-image position a colour channel looks
// through; the result is the layer's premultiplied colour there, transparent where the
// layer does not cover it.

fn projection(e: vec2<f32>) -> vec4<f32> {
    if outside(e) {
        return vec4<f32>(0.0);
    }
    let r = ray(e);
    if r.z >= -1e-6 {
        return vec4<f32>(0.0);
    }
    let p = r.xy / -r.z;
    return sample_at(vec2<f32>(
        (p.x - pc.param.x) / (pc.param.y - pc.param.x),
        (pc.param.z - p.y) / (pc.param.z - pc.param.w),
    ), 0);
}

fn quad(e: vec2<f32>) -> vec4<f32> {
    if outside(e) {
        return vec4<f32>(0.0);
    }
    let r = ray(e);
    if abs(r.z) <= 1e-6 {
        return vec4<f32>(0.0);
    }
    let t = -pc.param.z / r.z;
    if t <= 0.0 {
        return vec4<f32>(0.0);
    }
    let hit = pc.param.xy + t * r.xy;
    return sample_at(vec2<f32>(hit.x / (2.0 * pc.size.x) + 0.5, 0.5 - hit.y / (2.0 * pc.size.y)), 0);
}

fn cylinder(e: vec2<f32>) -> vec4<f32> {
    if outside(e) {
        return vec4<f32>(0.0);
    }
    let r = ray(e);
    let t = exit_distance(pc.param.xyz, r, pc.size.x, true);
    if t <= 0.0 {
        return vec4<f32>(0.0);
    }
    let p = pc.param.xyz + t * r;
    let angle = atan2(p.x, -p.z);
    let height = pc.size.x * pc.size.y / pc.size.z;
    return sample_at(vec2<f32>(angle / pc.size.y + 0.5, 0.5 - p.y / height), 0);
}

// Both equirect kinds: by angles (3) and by scale and bias (4).
fn equirect(e: vec2<f32>) -> vec4<f32> {
    if outside(e) {
        return vec4<f32>(0.0);
    }
    let r = ray(e);
    let t = exit_distance(pc.param.xyz, r, pc.size.x, false);
    if t <= 0.0 {
        return vec4<f32>(0.0);
    }
    let p = normalize(pc.param.xyz + t * r);
    let lon = atan2(p.x, -p.z);
    let lat = asin(clamp(p.y, -1.0, 1.0));
    if KIND == 3u {
        return sample_at(vec2<f32>(lon / pc.size.y + 0.5, (pc.size.z - lat) / (pc.size.z - pc.size.w)), 0);
    }
    let whole = vec2<f32>(lon / 6.28318530717959 + 0.5, 0.5 - lat / 3.14159265358979);
    return sample_at(whole * pc.size.yz + vec2<f32>(pc.size.w, pc.param.w), 0);
}

fn cube(e: vec2<f32>) -> vec4<f32> {
    if outside(e) {
        return vec4<f32>(0.0);
    }
    let r = ray(e);
    // The cube face the direction points at, and where on it (Vulkan's cube map
    // convention: +X, -X, +Y, -Y, +Z, -Z).
    let a = abs(r);
    var face = 0;
    var sc = 0.0;
    var tc = 0.0;
    var ma = 0.0;
    if a.x >= a.y && a.x >= a.z {
        ma = a.x;
        tc = -r.y;
        if r.x > 0.0 { face = 0; sc = -r.z; } else { face = 1; sc = r.z; }
    } else if a.y >= a.z {
        ma = a.y;
        sc = r.x;
        if r.y > 0.0 { face = 2; tc = r.z; } else { face = 3; tc = -r.z; }
    } else {
        ma = a.z;
        tc = -r.y;
        if r.z > 0.0 { face = 4; sc = r.x; } else { face = 5; sc = -r.x; }
    }
    return sample_at(vec2<f32>(0.5 * (sc / ma + 1.0), 0.5 * (tc / ma + 1.0)), face);
}

struct FsOut {
    @location(0) @blend_src(0) color: vec4<f32>,
    @location(0) @blend_src(1) alpha: vec4<f32>,
};

// Red from the red channel's sample, green from green's, blue from blue's.
fn out(r: vec4<f32>, g: vec4<f32>, b: vec4<f32>) -> FsOut {
    return FsOut(vec4<f32>(r.r, g.g, b.b, 0.0), vec4<f32>(r.a, g.a, b.a, 0.0));
}

// Outside the lens's valid radius: nothing (colour and alpha 0: the panel stays black).
fn beyond_lens(in: VsOut) -> bool {
    return dot(in.p, in.p) > pc.eye.x;
}

const NOTHING = FsOut(vec4<f32>(0.0), vec4<f32>(0.0));

// Which kind of layer this build of the shader draws (render::kind's numbers). The build
// script makes one SPIR-V module per kind with the constant set: a software rasteriser
// runs every branch of a shader whose branches depend on data, so each module keeps
// only its own kind's code.
override KIND: u32 = 0u;

@fragment
fn fs_main(in: VsOut) -> FsOut {
    if beyond_lens(in) {
        return NOTHING;
    }
    switch KIND {
        case 0u: {
            return out(projection(in.uv_r), projection(in.uv_g), projection(in.uv_b));
        }
        case 1u: {
            return out(quad(in.uv_r), quad(in.uv_g), quad(in.uv_b));
        }
        case 2u: {
            return out(cylinder(in.uv_r), cylinder(in.uv_g), cylinder(in.uv_b));
        }
        case 3u, 4u: {
            return out(equirect(in.uv_r), equirect(in.uv_g), equirect(in.uv_b));
        }
        default: {
            return out(cube(in.uv_r), cube(in.uv_g), cube(in.uv_b));
        }
    }
}
