// Layers into an eye buffer: one full-screen triangle per layer. Every pixel is a view
// direction at the display pose; it is rotated into the layer's space (projection: the
// app's render pose, the timewarp; quad: the quad's plane) and sampled from the layer's
// sub-image. Output is premultiplied (blend ONE, ONE_MINUS_SRC_ALPHA).

struct Layer {
    eye_tan: vec4<f32>, // tan of the eye buffer's left, right, up, down edges
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

struct VsOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> VsOut {
    let uv = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    var o: VsOut;
    o.pos = vec4<f32>(uv * 2.0 - 1.0, 0.0, 1.0);
    o.uv = uv;
    return o;
}

@fragment
fn fs_main(in: VsOut) -> @location(0) vec4<f32> {
    let tx = mix(pc.eye_tan.x, pc.eye_tan.y, in.uv.x);
    let ty = mix(pc.eye_tan.z, pc.eye_tan.w, in.uv.y);
    let d = vec3<f32>(tx, ty, -1.0);
    let r = vec3<f32>(dot(pc.rot0.xyz, d), dot(pc.rot1.xyz, d), dot(pc.rot2.xyz, d));
    let kind = u32(pc.rot0.w);
    let flags = u32(pc.rot1.w);
    var uv = vec2<f32>(-1.0, -1.0);
    var face = 0;
    if kind == 5u {
        // The cube face the direction points at, and where on it (Vulkan's cube map
        // convention: +X, -X, +Y, -Y, +Z, -Z).
        let a = abs(r);
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
        uv = vec2<f32>(0.5 * (sc / ma + 1.0), 0.5 * (tc / ma + 1.0));
    } else if kind == 0u {
        if r.z < -1e-6 {
            let p = r.xy / -r.z;
            uv = vec2<f32>(
                (p.x - pc.param.x) / (pc.param.y - pc.param.x),
                (pc.param.z - p.y) / (pc.param.z - pc.param.w),
            );
        }
    } else if kind == 1u {
        if abs(r.z) > 1e-6 {
            let t = -pc.param.z / r.z;
            if t > 0.0 {
                let hit = pc.param.xy + t * r.xy;
                uv = vec2<f32>(hit.x / (2.0 * pc.size.x) + 0.5, 0.5 - hit.y / (2.0 * pc.size.y));
            }
        }
    } else if kind == 2u {
        let t = exit_distance(pc.param.xyz, r, pc.size.x, true);
        if t > 0.0 {
            let p = pc.param.xyz + t * r;
            let angle = atan2(p.x, -p.z);
            let height = pc.size.x * pc.size.y / pc.size.z;
            uv = vec2<f32>(angle / pc.size.y + 0.5, 0.5 - p.y / height);
        }
    } else {
        let t = exit_distance(pc.param.xyz, r, pc.size.x, false);
        if t > 0.0 {
            let p = normalize(pc.param.xyz + t * r);
            let lon = atan2(p.x, -p.z);
            let lat = asin(clamp(p.y, -1.0, 1.0));
            if kind == 3u {
                uv = vec2<f32>(lon / pc.size.y + 0.5, (pc.size.z - lat) / (pc.size.z - pc.size.w));
            } else {
                let whole = vec2<f32>(lon / 6.28318530717959 + 0.5, 0.5 - lat / 3.14159265358979);
                uv = whole * pc.size.yz + vec2<f32>(pc.size.w, pc.param.w);
            }
        }
    }
    if uv.x < 0.0 || uv.y < 0.0 || uv.x > 1.0 || uv.y > 1.0 {
        return vec4<f32>(0.0, 0.0, 0.0, 0.0);
    }
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
