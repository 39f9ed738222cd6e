// Included by the math_* shaders, which define T (the precision under test) and OUT (the type
// each result is stored as). These are the built-ins that lavapipe's JIT may compile into calls
// of C functions found by name at run time (libm's expf, powf, frexp …): through Airlock they
// run in the server, which must offer those names (issue 13).
// Element i reads x = src[2i] and y = src[2i + 1] and writes its results to dst[RESULTS * i …].
layout(set = 0, binding = 0) readonly buffer In { float v[]; } src;
layout(set = 0, binding = 1) writeonly buffer Out { OUT v[]; } dst;

#ifdef DOUBLE
// GLSL has no exp, log or pow for doubles; these are the ones it has that call out.
const uint RESULTS = 6u;
#else
const uint RESULTS = 9u;
#endif

void store_results(uint i) {
    T x = T(src.v[2u * i]);
    T y = T(src.v[2u * i + 1u]);
    int e;
    T m = frexp(x, e);
#ifdef DOUBLE
    T whole;
    T part = modf(x * y, whole);
    OUT r[RESULTS] = OUT[](OUT(m), OUT(e), OUT(part), OUT(whole), OUT(fract(x / y)),
                           OUT(ldexp(y, int(x * T(4)) - 8)));
#else
    OUT r[RESULTS] = OUT[](OUT(exp(x)), OUT(exp2(y)), OUT(log(x)), OUT(log2(y)), OUT(pow(x, y)),
                           OUT(sinh(y)), OUT(cosh(x)), OUT(m), OUT(e));
#endif
    for (uint k = 0u; k < RESULTS; k++) {
        dst.v[RESULTS * i + k] = r[k];
    }
}
